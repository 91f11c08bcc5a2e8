"""End-to-end: the map page in real headless Chromium (Selenium + Debian chromium-driver) over a trained run.

The page is served by uvicorn on 127.0.0.1; the test picks a user and waits for the recommended markers. It also
checks that every resource the page loaded came from the service itself (no CDN, no tiles).
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "retrieve"))
from retrieve_fakes import make_tiny_run  # noqa: E402

SCREENSHOT = os.environ.get("GEOTOWER_E2E_SCREENSHOT")  # optional PNG path, for looking at the page
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
pytestmark = pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
                                reason="needs Debian chromium + chromium-driver (apt-get install -y chromium "
                                       "chromium-driver)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import uvicorn

    from geotower.retrieve.service import create_app

    run = make_tiny_run(tmp_path_factory.getbasetemp() / "tiny-real-run")
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(run), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    pytest.importorskip("selenium", reason="pip install selenium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tmp_path_factory.mktemp("chromium-profile")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1200,800"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def test_pick_user_shows_recommended_markers(browser, base_url: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver = browser
    driver.get(base_url + "/")
    wait = WebDriverWait(driver, 20)
    wait.until(lambda d: d.execute_script("return document.body.dataset.ready") == "1")
    assert driver.find_elements(By.CSS_SELECTOR, ".rec-marker") == []
    Select(driver.find_element(By.ID, "user")).select_by_value("u0")
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".rec-marker")) == 10)
    results = driver.find_elements(By.CSS_SELECTOR, "#results li")
    assert len(results) == 10 and all("score" in li.text for li in results)
    assert "(user)" in driver.find_element(By.ID, "status").text
    # the 40 cafes are drawn as grey circles on a canvas (no tile layer), so the map has content
    assert driver.find_elements(By.CSS_SELECTOR, ".leaflet-overlay-pane canvas")
    resources = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert resources and all(url.startswith(base_url) for url in resources), resources


def test_click_on_map_with_radius_filters_by_distance(browser, base_url: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser
    wait = WebDriverWait(driver, 20)
    driver.find_element(By.ID, "radius").send_keys("0.3")
    map_el = driver.find_element(By.ID, "map")
    ActionChains(driver).move_to_element(map_el).click().perform()  # the map centre
    wait.until(lambda d: "km)" in d.find_element(By.ID, "results").text)
    distances = [float(li.text.rsplit(", ", 1)[1].split(" km")[0])
                 for li in driver.find_elements(By.CSS_SELECTOR, "#results li")]
    # the centre of the 8 x 5 cafe grid has cafes within 300 m, and nothing farther may come back
    assert distances and all(d <= 0.3 for d in distances)
    assert len(driver.find_elements(By.CSS_SELECTOR, ".rec-marker")) == len(distances)
    if SCREENSHOT:
        driver.save_screenshot(SCREENSHOT)
    assert driver.find_elements(By.CSS_SELECTOR, "path.leaflet-interactive")  # the radius circle is drawn


def test_docs_page_renders_from_packaged_swagger(browser, base_url: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser
    driver.get(base_url + "/docs")
    WebDriverWait(driver, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock"))
    assert "/recommend" in driver.find_element(By.CSS_SELECTOR, ".swagger-ui").text
    resources = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert all(url.startswith(base_url) for url in resources), resources
