"""A small real dataset folder for the train tests: 20 places with categories and stars, 300 timed check-ins."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from geotower.ingest.dataset import DatasetSpec, TableSpec, write_dataset


@pytest.fixture(scope="module")
def cafes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    items = pd.DataFrame({"item_id": [f"i{k:02d}" for k in range(20)], "lat": 60.17 + rng.random(20) * 0.01,
                          "lon": 24.94 + rng.random(20) * 0.01, "cats": rng.choice(["cafe", "bar, cafe"], 20),
                          "stars": rng.random(20) * 5})
    inter = pd.DataFrame({"user_id": [f"u{u:02d}" for u in rng.integers(0, 15, 300)],
                          "item_id": [f"i{k:02d}" for k in rng.integers(0, 20, 300)], "rating": 5.0,
                          "timestamp": np.arange(300) * 3600})
    return write_dataset(tmp_path_factory.mktemp("cafes"), inter, items,
                         DatasetSpec(items=TableSpec(multi_label={"cats": ", "})))
