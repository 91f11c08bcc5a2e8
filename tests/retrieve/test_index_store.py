"""A run's saved index (geotower.retrieve.index_store): round trip per kind, stale and corrupt files refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from geotower.errors import ArtifactError
from geotower.retrieve.index_build import build_index
from geotower.retrieve.index_store import embeddings_sha256, load_index, save_index


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_save_load_roundtrip(tmp_path: Path, kind: str) -> None:
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(500, 8)).astype(np.float32)
    index = build_index(emb, kind)
    save_index(tmp_path, index, {"emb_sha256": embeddings_sha256(emb), "recall_at_10": 1.0})
    loaded, meta = load_index(tmp_path, emb)
    assert meta["kind"] == kind and loaded.n_items == 500
    q = rng.normal(size=(5, 8)).astype(np.float32)
    np.testing.assert_array_equal(loaded.search(q, 10)[1], index.search(q, 10)[1])
    assert (tmp_path / "index.faiss").exists() == (kind != "flat")


def test_load_rejects_stale_or_corrupt_index(tmp_path: Path) -> None:
    emb = np.random.default_rng(2).normal(size=(100, 4)).astype(np.float32)
    with pytest.raises(ArtifactError, match="no index"):
        load_index(tmp_path, emb)
    save_index(tmp_path, build_index(emb, "hnsw"), {"emb_sha256": embeddings_sha256(emb)})
    with pytest.raises(ArtifactError, match="other item embeddings"):
        load_index(tmp_path, emb + 1)
    (tmp_path / "index.faiss").write_bytes(b"not an index")
    with pytest.raises(ArtifactError, match="cannot read"):
        load_index(tmp_path, emb)
