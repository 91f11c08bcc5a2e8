"""Shared fixtures for the model tests: a tiny two-cluster places dataset and one short training run over it.

Items i00..i09 sit in cluster A (Helsinki centre), i10..i19 in cluster B about 5.5 km east; f0 is a feature-only
place in cluster A that nobody visited. Even users like cluster A, odd users cluster B (6 positives each, rating 5)
and each rates one place of the other cluster 1 (a negative). User c0 only has a negative rating: cold.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from geotower.config import RunConfig, resolve
from geotower.ingest.dataset import DatasetSpec, TableSpec, write_dataset

TINY = ["model.embed_dim=8", "model.hidden_dim=16", "model.n_layers=1", "model.cell_dim=4", "train.epochs=3",
        "train.batch_size=32", "train.lr=0.01", "train.patience=0", "train.val_fraction=0.3",
        "features.grid_cells_m=[500.0, 2000.0]"]


def geo_clusters(n_users: int = 24, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(interactions, items) of the two-cluster dataset described in the module docstring."""
    rng = np.random.default_rng(seed)
    j = np.arange(20)
    items = pd.DataFrame({"item_id": [f"i{k:02d}" for k in j], "name": [f"place {k}" for k in j],
                          "lat": 60.170 + (j % 10) * 0.0005, "lon": np.where(j < 10, 24.940, 25.040),
                          "stars": (j % 5).astype(float), "cats": np.where(j < 10, "cafe, bar", "bar")})
    items.loc[len(items)] = ["f0", "new place", 60.1712, 24.9405, 3.0, "cafe"]
    rows = []
    for u in range(n_users):
        own = rng.choice(10, size=6, replace=False) + (0 if u % 2 == 0 else 10)
        rows += [(f"u{u:02d}", f"i{k:02d}", 5.0, 10 * u + t) for t, k in enumerate(own)]
        rows.append((f"u{u:02d}", f"i{(own[0] + 10) % 20:02d}", 1.0, 10 * u + 7))
    rows.append(("c0", "i00", 1.0, 5))
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    return inter.drop(columns="timestamp"), items


SPEC = DatasetSpec(items=TableSpec(multi_label={"cats": ", "}))


@pytest.fixture(scope="session")
def cluster_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    inter, items = geo_clusters()
    return write_dataset(tmp_path_factory.mktemp("clusters"), inter, items, SPEC)


@pytest.fixture(scope="session")
def tiny_cfg() -> RunConfig:
    return resolve(None, TINY)


@pytest.fixture(scope="session")
def tiny_run(cluster_data: Path, tiny_cfg: RunConfig, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from geotower.pipeline.train import train_run

    out = tmp_path_factory.mktemp("run")
    train_run(cluster_data, out, tiny_cfg, progress=False)
    return out
