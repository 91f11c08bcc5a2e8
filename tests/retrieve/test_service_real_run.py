"""The service over a real trained run (model bundle from ``train_run``), including index --add and cold start."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from retrieve_fakes import make_tiny_run

from geotower import artifacts
from geotower.errors import ArtifactError
from geotower.pipeline.recommend import add_items, build_run_index
from geotower.retrieve.service import create_app


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    shared = make_tiny_run(tmp_path_factory.getbasetemp() / "tiny-real-run")
    own = tmp_path_factory.mktemp("real-run")  # index --add changes the run: not the copy other modules read
    run = Path(shutil.copytree(shared, own / "run"))
    build_run_index(run, "hnsw")
    new = pd.DataFrame({"item_id": ["new1"], "name": ["New cafe"], "lat": [39.951], "lon": [-75.169], "stars": [4.0]})
    add_items(run, artifacts.write_table(own / "new.parquet", new))
    return run


def test_real_run_end_to_end(real_run: Path) -> None:
    client = TestClient(create_app(real_run), base_url="http://localhost")
    health = client.get("/health").json()
    # the temporal 80/20 split puts u8's and u9's rows (the latest) in test: 8 users have train positives
    assert (health["items"], health["users"], health["index"]) == (41, 8, "hnsw")
    assert 0.0 <= health["recall_at_10"] <= 1.0
    # u0 trained on p0..p7 (its train rows are seen): none of them may come back
    body = client.get("/recommend", params={"user_id": "u0", "k": 5}).json()
    assert len(body["items"]) == 5 and body["mode"] == "user"
    assert {f"p{i}" for i in range(8)}.isdisjoint(it["item_id"] for it in body["items"])
    # 250 m around p0 (39.95, -75.17): p0 (0 km), p1 (0.171 km east), p8 (0.222 km north), new1 (0.140 km);
    # p9 is sqrt(0.171^2 + 0.222^2) = 0.280 km away
    near = client.get("/recommend", params={"k": 10, "lat": 39.95, "lon": -75.17, "radius_km": 0.25}).json()
    assert sorted(it["item_id"] for it in near["items"]) == ["new1", "p0", "p1", "p8"]
    assert all(it["distance_km"] <= 0.25 for it in near["items"])
    cold = client.post("/recommend", json={"user_id": "brand-new", "liked": ["p1", "p2"], "k": 3}).json()
    assert cold["mode"] == "cold_start" and {"p1", "p2"}.isdisjoint(it["item_id"] for it in cold["items"])
    assert client.get("/items/new1").json()["trained"] is False


def test_real_run_refuses_changed_data(real_run: Path, tmp_path: Path) -> None:
    data = Path(artifacts.read_json(real_run / "manifest.json")["dataset_dir"]) / "items.parquet"  # the shared data
    original = data.read_bytes()
    try:
        items = pd.read_parquet(data)
        items.loc[0, "stars"] = 5.0
        items.to_parquet(data, index=False)
        with pytest.raises(ArtifactError, match="changed since training"):
            create_app(real_run)
    finally:
        data.write_bytes(original)
