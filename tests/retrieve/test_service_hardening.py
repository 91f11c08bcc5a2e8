"""The service never answers 5xx to bad input (NaN, infinity, 1e400, lone surrogates), sets security headers on
every response, checks Host (DNS rebinding) and serves ids that contain '/' (issue #13, cases 1-2 and "Also")."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from retrieve_fakes import make_bundle

from geotower.retrieve.service import create_app, host_name


@pytest.fixture
def client(run_dir, loader) -> TestClient:
    return TestClient(create_app(run_dir, loader=loader), base_url="http://localhost")


def _post_raw(client: TestClient, text: str | bytes) -> Any:
    return client.post("/recommend", content=text, headers={"Content-Type": "application/json"})


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
@pytest.mark.parametrize("field", ["lat", "lon", "radius_km", "k"])
def test_non_finite_numbers_are_422(client: TestClient, field: str, number: str) -> None:
    body = {"lat": "1", "lon": "1", "radius_km": "1", "k": "3"}
    body[field] = number
    resp = _post_raw(client, "{" + ", ".join(f'"{k}": {v}' for k, v in body.items()) + "}")
    assert resp.status_code == 422, resp.text
    json.loads(resp.text)  # a valid JSON body: the input is not echoed
    assert "NaN" not in resp.text and "Infinity" not in resp.text


@pytest.mark.parametrize("body", ['{"user_id": "\\udc80"}', '{"liked": ["\\ud800"]}',
                                  '{"user_id": "ok", "liked": ["a\\udfffb"]}', '{"\\udc80": 1}'])
def test_lone_surrogates_are_422(client: TestClient, body: str) -> None:
    resp = _post_raw(client, body)
    assert resp.status_code == 422, resp.text
    resp.text.encode("utf-8")


def test_invalid_utf8_body_is_422(client: TestClient) -> None:
    assert _post_raw(client, b'{"user_id": "\xff\xfe"}').status_code == 422


def test_get_query_with_non_finite_or_broken_text(client: TestClient) -> None:
    for params in ({"lat": "nan", "lon": "1"}, {"lat": "inf", "lon": "1"}, {"lat": "1e400", "lon": "0"},
                   {"radius_km": "nan", "lat": "0", "lon": "0"}):
        assert client.get("/recommend", params=params).status_code == 422
    assert client.get("/recommend?user_id=%ED%B2%80").status_code in (404, 422)  # percent-encoded surrogate


def test_security_headers_on_every_response(client: TestClient) -> None:
    for resp in (client.get("/"), client.get("/health"), client.get("/items/nope"), client.get("/docs"),
                 _post_raw(client, "{bad"), client.get("/static/app.js"), client.delete("/health")):
        assert resp.headers["X-Content-Type-Options"] == "nosniff", resp.url
        assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
        assert resp.headers["Referrer-Policy"] == "no-referrer"


def test_host_header_is_checked(run_dir, loader) -> None:
    app = create_app(run_dir, loader=loader)
    for base in ("http://localhost:8000", "http://127.0.0.1:9", "http://[::1]:8000"):
        assert TestClient(app, base_url=base).get("/health").status_code == 200, base
    evil = TestClient(app, base_url="http://attacker.example:8000").get("/health")
    assert evil.status_code == 400 and evil.headers["X-Content-Type-Options"] == "nosniff"
    other = create_app(run_dir, loader=loader, allowed_hosts=["recs.internal"])
    assert TestClient(other, base_url="http://recs.internal").get("/health").status_code == 200
    assert TestClient(other, base_url="http://localhost").get("/health").status_code == 400


def test_host_name_parsing() -> None:
    assert [host_name(h) for h in ("LocalHost:80", "[::1]:8000", "::1", "a.b", "")] == \
        ["localhost", "::1", "::1", "a.b", ""]


def test_item_id_with_slash(run_dir) -> None:
    bundle = make_bundle(run_dir)
    bundle.item_ids = bundle.item_ids.astype(object)
    bundle.item_ids[3] = "a/b"
    bundle.items.loc[3, "item_id"] = "a/b"
    client = TestClient(create_app(run_dir, loader=lambda _p: bundle), base_url="http://localhost")
    resp = client.get("/items/a/b")
    assert resp.status_code == 200 and resp.json()["item_id"] == "a/b"
    assert client.get("/items/a%2Fb").json()["item_id"] == "a/b"


_json = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True, allow_infinity=True) | st.integers()
    | st.text(st.characters(codec=None, categories=None), max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(
        st.sampled_from(["user_id", "liked", "k", "lat", "lon", "radius_km", "exclude_seen", "x"]), children,
        max_size=5),
    max_leaves=8)


@given(body=_json)
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_fuzz_bodies_with_nan_and_surrogates_never_5xx(run_dir_factory: Any, body: Any) -> None:
    client = run_dir_factory
    text = json.dumps(body, allow_nan=True)  # NaN/Infinity literals and \ud800-style escapes on purpose
    resp = _post_raw(client, text)
    assert resp.status_code < 500, (text, resp.text)
    json.loads(resp.text)


@pytest.fixture(scope="module")
def run_dir_factory(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    """One client for the whole fuzz (hypothesis reruns the test body; function fixtures would be shared anyway)."""
    run_dir = tmp_path_factory.mktemp("fuzz-run")
    bundle = make_bundle(run_dir)
    return TestClient(create_app(run_dir, loader=lambda _p: bundle), base_url="http://localhost")
