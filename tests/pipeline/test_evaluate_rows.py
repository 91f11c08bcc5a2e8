"""The rows of ``geotower evaluate`` (pipeline.evaluate_rows); whole runs through them are in test_evaluate.py."""

from __future__ import annotations

import numpy as np
import pandas as pd

from geotower.evaluate.heldout import HeldOut
from geotower.pipeline import evaluate_rows as R


def test_time_decayed_baseline_gets_the_positive_rows_times() -> None:
    """``recent`` ranks by decayed counts only if evaluate hands it (item, time) of the positives, not the matrix."""
    proto = HeldOut(np.array(["u0", "u1"]), np.array(["a", "b", "c"]), *([None] * 3), np.array([0]), 0)
    rows = pd.DataFrame({"user_id": ["u0", "u1", "u1", "u0"], "item_id": ["a", "b", "x", "c"],
                         "timestamp": [10, 20, 30, 40], "positive": [True, True, True, False]})
    items, times = R._events(proto, rows)  # "x" is not in the run, "c" is not a positive
    assert items.tolist() == [0, 1] and times.tolist() == [10.0, 20.0]
    assert R._events(proto, rows.drop(columns="timestamp")) is None
