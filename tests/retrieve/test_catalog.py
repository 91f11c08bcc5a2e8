"""The run's catalog: trained items plus items added from features only (geotower.retrieve.catalog)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from geotower import artifacts
from geotower.errors import DataError
from geotower.retrieve.catalog import load_catalog, read_added, save_added


def test_read_added_checks_lengths(run_dir) -> None:
    artifacts.write_table(run_dir / "added_items.parquet", pd.DataFrame({"item_id": ["a", "b"]}))
    artifacts.save_arrays(run_dir / "added_items.safetensors", {"emb": np.zeros((1, 2), np.float32)})
    with pytest.raises(DataError, match="2 added items but 1 embeddings"):
        read_added(run_dir)


def test_added_items_follow_the_trained_ones_in_row_order(bundle, run_dir) -> None:
    save_added(run_dir, pd.DataFrame({"item_id": ["n1"], "lat": [1.0], "lon": [2.0]}), np.ones((1, 2), np.float32))
    save_added(run_dir, pd.DataFrame({"item_id": ["n2"], "name": ["Two"]}), np.full((1, 2), 2.0, np.float32))
    catalog = load_catalog(bundle, run_dir)
    assert catalog.n_trained == 8 and catalog.item_ids[-2:].tolist() == ["n1", "n2"]
    np.testing.assert_array_equal(catalog.emb[-2:], [[1.0, 1.0], [2.0, 2.0]])
    assert catalog.popularity[-2:].tolist() == [0.0, 0.0]  # never trained on: no positives
    assert catalog.lats[-2] == 1.0 and np.isnan(catalog.lats[-1])
    assert catalog.names is not None and catalog.names[-1] == "Two" and catalog.names[-2] is None
