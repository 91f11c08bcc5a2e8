"""HTTP API over the known-answer run (conftest.py), through FastAPI's TestClient."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from geotower.errors import ArtifactError
from geotower.retrieve.index_build import build_index
from geotower.retrieve.index_store import save_index
from geotower.retrieve.service import create_app


@pytest.fixture
def client(run_dir, loader) -> TestClient:
    return TestClient(create_app(run_dir, loader=loader), base_url="http://localhost")


def _ids(resp) -> list[str]:
    return [it["item_id"] for it in resp.json()["items"]]


def test_health_and_docs(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok", "items": 8, "users": 2, "index": "flat",
                                            "recall_at_10": None}
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/static/swagger/swagger-ui-bundle.js" in docs.text
    assert "cdn" not in docs.text.lower() and "https://" not in docs.text  # vendored, nothing from the internet
    assert client.get("/static/swagger/swagger-ui.css").status_code == 200
    assert "/recommend" in client.get("/openapi.json").json()["paths"]


def test_get_recommend_known_user_with_fields(client: TestClient) -> None:
    resp = client.get("/recommend", params={"user_id": "u0", "k": 2})
    assert resp.status_code == 200
    assert resp.json() == {"mode": "user", "note": None, "items": [
        {"item_id": "i6", "score": 6.0, "name": "Place 6", "lat": 0.0, "lon": 0.06, "distance_km": None},
        {"item_id": "i5", "score": 5.0, "name": "Place 5", "lat": 0.0, "lon": 0.05, "distance_km": None}]}


def test_get_recommend_geo_filter(client: TestClient) -> None:
    resp = client.get("/recommend", params={"user_id": "u0", "k": 2, "lat": 0, "lon": 0, "radius_km": 2.3})
    assert _ids(resp) == ["i2", "i1"]
    assert resp.json()["items"][1]["distance_km"] == pytest.approx(1.11195, abs=1e-4)


def test_get_recommend_without_user_is_popularity(client: TestClient) -> None:
    resp = client.get("/recommend", params={"k": 3})
    assert (_ids(resp), resp.json()["mode"]) == (["i2", "i0", "i7"], "popularity")
    assert resp.json()["note"]


def test_post_recommend_cold_start_and_known_user(client: TestClient) -> None:
    resp = client.post("/recommend", json={"user_id": "someone-new", "liked": ["i1", "i3"], "k": 3})
    assert (_ids(resp), resp.json()["mode"]) == (["i7", "i6", "i5"], "cold_start")
    assert _ids(client.post("/recommend", json={"user_id": "u1", "k": 1})) == ["i1"]
    assert _ids(client.post("/recommend", json={"user_id": "u1", "k": 1, "exclude_seen": False})) == ["i0"]


def test_items_and_users(client: TestClient) -> None:
    assert client.get("/items/i3").json() == {"item_id": "i3", "name": "Place 3", "lat": 0.0, "lon": 0.03,
                                              "popularity": 1.0, "trained": True}
    page = client.get("/items", params={"limit": 2, "offset": 7}).json()
    assert page["total"] == 8 and [it["item_id"] for it in page["items"]] == ["i7"]
    assert client.get("/users", params={"limit": 1, "offset": 1}).json() == {"users": ["u1"], "total": 2}


@pytest.mark.parametrize("method, url, kwargs, fragment", [
    ("get", "/recommend", {"params": {"user_id": "ghost"}}, "unknown user id 'ghost'"),
    ("get", "/items/ghost", {}, "unknown item id(s): 'ghost'"),
    ("post", "/recommend", {"json": {"liked": ["i1", "ghost"]}}, "'ghost'"),
    ("post", "/recommend", {"json": {"user_id": "ghost"}}, "unknown user id"),
])
def test_unknown_ids_are_404_with_message(client: TestClient, method, url, kwargs, fragment) -> None:
    resp = getattr(client, method)(url, **kwargs)
    assert resp.status_code == 404 and fragment in resp.json()["detail"]


@pytest.mark.parametrize("params", [
    {"k": 0}, {"k": 1001}, {"k": "ten"}, {"k": 2.5}, {"lat": 91, "lon": 0}, {"lat": 0, "lon": -180.5},
    {"lat": "nan", "lon": 0}, {"lat": 0, "lon": "inf"}, {"lat": 0, "lon": 0, "radius_km": 0},
    {"lat": 0, "lon": 0, "radius_km": -1}, {"lat": 0, "lon": 0, "radius_km": "inf"}, {"radius_km": 1},
    {"lat": 10}, {"lon": 10, "radius_km": 1}, {"user_id": "x" * 300},
])
def test_malformed_get_is_422(client: TestClient, params) -> None:
    assert client.get("/recommend", params=params).status_code == 422


@pytest.mark.parametrize("body", [
    {"k": 0}, {"liked": "i1"}, {"liked": [1, 2]}, {"liked": [""]}, {"lat": 0}, {"lat": 0, "lon": 0, "radius_km": 0},
    {"extra": True}, [], "text",
])
def test_malformed_post_is_422(client: TestClient, body) -> None:
    assert client.post("/recommend", json=body).status_code == 422


def test_map_page_and_static_files_come_from_the_package(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "/static/leaflet/leaflet.js" in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert "http" not in page.text.replace("http-equiv", "")  # nothing from a CDN
    assert client.get("/static/leaflet/leaflet.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/static/leaflet/images/marker-icon.png").status_code == 200
    for bad in ("/static/../service.py", "/static/%2e%2e/service.py", "/static/nope.js", "/static//etc/passwd"):
        assert client.get(bad).status_code == 404


def test_stale_index_refuses_to_start(run_dir, loader, bundle) -> None:
    save_index(run_dir, build_index(bundle.item_emb, "flat"), {"emb_sha256": "0" * 64})
    with pytest.raises(ArtifactError, match="other item embeddings"):
        create_app(run_dir, loader=loader)


def test_unparseable_body_is_422_and_405_lists_every_method(client: TestClient) -> None:
    resp = client.post("/recommend", content=b"\xff{", headers={"Content-Type": "application/json"})
    assert resp.status_code == 422 and resp.json()["detail"][0]["loc"] == ["body"]
    resp = client.delete("/recommend")
    assert resp.status_code == 405 and set(resp.headers["allow"].split(", ")) >= {"GET", "POST"}


def test_extreme_but_valid_values_do_not_fail(client: TestClient) -> None:
    assert client.get("/users", params={"offset": 10**9}).json()["users"] == []
    assert client.get("/items", params={"offset": 10**9, "limit": 5}).json()["items"] == []
    assert client.get("/users", params={"offset": 10**30}).status_code == 422
    resp = client.get("/recommend", params={"user_id": "u0", "lat": 90, "lon": 180, "radius_km": 1e308})
    assert resp.status_code == 200 and len(resp.json()["items"]) == 7  # the whole globe minus the seen i7
