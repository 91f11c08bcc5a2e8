"""save_bundle / load_bundle over one short run of the two-cluster dataset (see conftest)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from geotower import artifacts
from geotower.errors import ArtifactError, DataError
from geotower.model.bundle import FEATURES_JSON, load_bundle


def test_bundle_contents(tiny_run: Path) -> None:
    b = load_bundle(tiny_run)
    assert list(b.item_ids) == [f"i{k:02d}" for k in range(20)] + ["f0"]  # all items, dataset order
    assert list(b.items.columns) == ["item_id", "name", "lat", "lon"]
    width = 8 * b.config.model.members  # an ensemble concatenates its members' embeddings
    assert b.item_emb.shape == (21, width) and b.item_emb.dtype == np.float32
    assert list(b.user_ids) == [f"u{u:02d}" for u in range(24)]  # c0 has no positives: not in the bundle
    assert b.user_emb.shape == (24, width) and b.seen.shape == (24, 21)
    assert b.popularity[-1] == 0 and b.popularity.sum() > 0
    assert b.user_index("u03") == 3 and b.user_index("c0") is None
    assert b.item_index(["i05", "f0"]).tolist() == [5, 20]
    manifest = artifacts.read_json(tiny_run / "manifest.json")
    assert manifest["cold_users"] == 1 and manifest["n_items"] == 21 and manifest["best_epoch"] >= 1
    assert manifest["data"]["rows"]["interactions"] == 24 * 7 + 1


def test_seen_has_every_train_row_including_negatives(tiny_run: Path) -> None:
    b = load_bundle(tiny_run)
    manifest = artifacts.read_json(tiny_run / "manifest.json")
    # per-user random split keeps 6 of each user's 7 rows (1 negative among them possibly) and c0's single row;
    # every train row of an indexed user is one distinct seen (user, item) pair, c0 is not indexed
    assert manifest["rows"]["train"] == 24 * 6 + 1
    assert b.seen.nnz == 24 * 6


def test_unknown_item_ids_named(tiny_run: Path) -> None:
    with pytest.raises(DataError, match="nope"):
        load_bundle(tiny_run).item_index(["i01", "nope"])


def test_embed_liked_and_new_items(tiny_run: Path, cluster_data: Path) -> None:
    b = load_bundle(tiny_run)
    u = b.embed_liked(["i01", "i02", "i03"])
    assert u.shape == (8 * b.config.model.members,) and np.isfinite(u).all()
    items = pd.read_parquet(cluster_data / "items.parquet")
    v = b.embed_new_items(items.iloc[[20]])
    np.testing.assert_allclose(v[0], b.item_emb[20], atol=1e-5)  # f0 never trained: features only
    with pytest.raises(ArtifactError, match="stars"):
        b.embed_new_items(items.drop(columns="stars"))
    with pytest.raises(ArtifactError, match="price"):
        b.embed_new_items(items.assign(price=1.0))
    with pytest.raises(DataError):
        b.embed_liked([])


def test_changed_data_refused(tiny_run: Path, cluster_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    data = tmp_path / "data"
    shutil.copytree(cluster_data, data)
    manifest = artifacts.read_json(run / "manifest.json")
    artifacts.write_json(run / "manifest.json", {**manifest, "dataset_dir": str(data)})
    artifacts.write_marker(run, "run", 1)  # re-seal the hand edit (an unsealed edit is refused: tests/reliability)
    load_bundle(run)
    items = pd.read_parquet(data / "items.parquet")
    items.loc[0, "stars"] = 4.5
    items.to_parquet(data / "items.parquet", index=False)
    with pytest.raises(ArtifactError, match="items: content differs"):
        load_bundle(run)
    load_bundle(run, verify_data=False)


def test_feature_schema_mismatch_refused(tiny_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    meta = json.loads((run / FEATURES_JSON).read_text())
    meta["items"]["dense_dim"] += 1
    (run / FEATURES_JSON).write_text(json.dumps(meta))
    artifacts.write_marker(run, "run", 1)
    with pytest.raises(ArtifactError, match="item feature width"):
        load_bundle(run, verify_data=False)


def test_no_pickle_files(tiny_run: Path) -> None:
    suffixes = {p.suffix for p in tiny_run.rglob("*") if p.is_file() and "tb" not in p.parts}
    assert suffixes <= {".json", ".safetensors", ".parquet", ".png"}
