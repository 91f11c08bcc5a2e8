"""The held-out splits (ingest/split.py): temporal with ties kept together, random per user, the automatic pick."""

from __future__ import annotations

import numpy as np
import pandas as pd

from geotower.ingest.split import holdout_split, random_split, temporal_split

INTER = pd.DataFrame({"user_id": ["u1", "u1", "u2", "u2"], "item_id": ["a", "b", "b", "c"],
                      "rating": [5, 1, 4, 3], "timestamp": [100, 200, 300, 400]})


def test_temporal_split_keeps_equal_timestamps_together() -> None:
    # 10 rows; timestamps 1..6 with a burst of five rows at t=5. The 0.8 quantile ("lower") of
    # [1,2,3,4,5,5,5,5,5,6] is the 8th smallest value (index floor(0.8*9)=7) = 5, so every t=5 row is train.
    inter = pd.DataFrame({"user_id": list("abcdefghij"), "item_id": "x",
                          "timestamp": [5, 1, 5, 2, 5, 3, 5, 4, 5, 6]})
    split = temporal_split(inter, 0.2)
    assert split.cutoff == 5 and split.method == "temporal"
    assert split.test.tolist() == [9] and sorted(split.train.tolist()) == list(range(9))


def test_random_split_fractions_per_user_and_determinism() -> None:
    # user a has 10 rows -> floor(10 * 0.3) = 3 test; b has 3 -> 0; c has 1 -> 0 (single rows stay in train)
    inter = pd.DataFrame({"user_id": ["a"] * 10 + ["b"] * 3 + ["c"], "item_id": [str(i) for i in range(14)]})
    split = random_split(inter, 0.3, seed=1)
    assert split.method == "random" and len(split.test) == 3
    assert set(inter["user_id"].iloc[split.test]) == {"a"}
    assert sorted(np.concatenate([split.train, split.test]).tolist()) == list(range(14))
    again = random_split(inter, 0.3, seed=1)
    assert again.test.tolist() == split.test.tolist()
    others = {tuple(random_split(inter, 0.3, seed=s).test.tolist()) for s in range(2, 8)}
    assert len(others) > 1  # the seed matters


def test_holdout_split_picks_by_timestamps() -> None:
    assert holdout_split(INTER, 0.25, 0).method == "temporal"
    assert holdout_split(INTER.drop(columns="timestamp"), 0.5, 0).method == "random"
