"""Known-answer catalog for the retrieval tests: 8 places on the equator, 2 users, 2-d embeddings.

Place i sits at (lat 0, lon 0.01 * i), so neighbours are 1.112 km apart (0.01 deg x 111.195 km/deg), and has
embedding [i, 1]. User u0 = [1, 0] scores place i as i (prefers the east end); u1 = [-1, 0] scores it -i. u0 saw
place 7 in training, u1 saw place 0. Popularity [5, 3, 8, 1, 0, 2, 2, 4] ranks 2, 0, 7, 1, 5, 6, 3, 4.
Until the real model bundle is used everywhere, ``FakeBundle`` stands in for ``geotower.model.bundle.ModelBundle``.
The fixtures ``run_dir``, ``bundle`` and ``loader`` serve it in a temporary run folder: tests/retrieve/conftest.py
imports them, and so does tests/pipeline/conftest.py (for test_recommend.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from geotower.config import RunConfig
from geotower.errors import ArtifactError, DataError

N_ITEMS = 8
FEATURES = ["f0", "f1"]


@dataclass
class FakeBundle:
    """Contract-B-shaped bundle with deterministic towers: liked -> mean of item vectors; new item -> [f0, f1]."""

    run_dir: Path
    item_ids: np.ndarray
    item_emb: np.ndarray
    user_ids: np.ndarray
    user_emb: np.ndarray
    items: pd.DataFrame
    seen: sp.csr_matrix
    popularity: np.ndarray
    config: RunConfig = field(default_factory=RunConfig)

    def user_index(self, user_id: str) -> int | None:
        hits = np.flatnonzero(self.user_ids == user_id)
        return int(hits[0]) if len(hits) else None

    def item_index(self, item_ids: Sequence[str]) -> np.ndarray:
        lookup = {it: i for i, it in enumerate(self.item_ids)}
        missing = [i for i in item_ids if i not in lookup]
        if missing:
            raise DataError(f"unknown item ids {missing}")
        return np.array([lookup[i] for i in item_ids], dtype=np.int64)

    def embed_liked(self, liked_item_ids: Sequence[str]) -> np.ndarray:
        return self.item_emb[self.item_index(liked_item_ids)].mean(axis=0)

    def embed_new_items(self, items: pd.DataFrame) -> np.ndarray:
        for col in FEATURES:
            if col not in items.columns:
                raise ArtifactError(f"missing feature column {col!r}")
        return items[FEATURES].to_numpy(dtype=np.float32)


def make_bundle(run_dir: Path) -> FakeBundle:
    """The known-answer catalog described in the module docstring."""
    idx = np.arange(N_ITEMS)
    items = pd.DataFrame({"item_id": [f"i{i}" for i in idx], "name": [f"Place {i}" for i in idx],
                          "lat": 0.0, "lon": 0.01 * idx})
    seen = sp.csr_matrix((np.ones(2), ([0, 1], [7, 0])), shape=(2, N_ITEMS))
    return FakeBundle(run_dir, items["item_id"].to_numpy(), np.c_[idx, np.ones(N_ITEMS)].astype(np.float32),
                      np.array(["u0", "u1"]), np.array([[1, 0], [-1, 0]], dtype=np.float32), items, seen,
                      np.array([5, 3, 8, 1, 0, 2, 2, 4], dtype=np.float64))


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """An empty run folder under the test's tmp_path."""
    path = tmp_path / "run"
    path.mkdir()
    return path


@pytest.fixture
def bundle(run_dir: Path) -> FakeBundle:
    return make_bundle(run_dir)


@pytest.fixture
def loader(bundle: FakeBundle):
    """A bundle loader for the retrieval code that hands back the known-answer bundle."""
    return lambda _run_dir: bundle


def make_tiny_run(root: Path, origin: tuple[float, float] = (39.95, -75.17)) -> Path:
    """A real run (``train_run`` on 40 cafes x 10 users, 2 epochs, small towers): about 5 s on 2 cores.

    Cafes sit on an 8 x 5 grid with 0.002 deg steps from ``origin`` (default (39.95, -75.17)); user u trains on 8
    cafes from 3u on.
    Built once per ``root`` (pass the session's base temp folder to share it between test modules).
    """
    if (root / "run" / "manifest.json").exists():
        return root / "run"
    from geotower.config import resolve
    from geotower.ingest.dataset import DatasetSpec, write_dataset
    from geotower.pipeline.train import train_run

    n_items, n_users = 40, 10
    grid = np.arange(n_items)
    items = pd.DataFrame({"item_id": [f"p{i}" for i in grid], "name": [f"Cafe {i}" for i in grid],
                          "lat": origin[0] + 0.002 * (grid // 8), "lon": origin[1] + 0.002 * (grid % 8),
                          "stars": 1.0 + (grid % 5)})
    inter = pd.DataFrame([(f"u{u}", f"p{(3 * u + j) % n_items}", 5.0, 1_600_000_000 + 3600 * (10 * u + j))
                          for u in range(n_users) for j in range(8)],
                         columns=["user_id", "item_id", "rating", "timestamp"])
    data = write_dataset(root / "data", inter, items, DatasetSpec())
    cfg = resolve(None, ["train.epochs=2", "model.hidden_dim=32", "model.embed_dim=16", "train.batch_size=64"])
    train_run(data, root / "run", cfg, progress=False)
    return root / "run"
