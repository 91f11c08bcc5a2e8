"""Held-out splits: the original global temporal 80/20 split, and per-user random splits without timestamps.

Pure functions over the normalised interactions frame; the seed comes in as an int for a numpy Generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from geotower import schema as S


@dataclass(frozen=True)
class Split:
    """Row positions (into the interactions frame) of the two parts, and how the cut was made."""

    train: np.ndarray  # int64 row positions
    test: np.ndarray  # int64 row positions
    method: str  # "temporal" or "random"
    cutoff: int | None = None  # epoch seconds of the temporal cut (test = timestamp > cutoff)


def temporal_split(interactions: pd.DataFrame, test_fraction: float) -> Split:
    """Global cut at the (1 - test_fraction) quantile of timestamps (the original protocol).

    Rows at the cutoff time go to train, so a burst of equal timestamps is never split by row order.
    """
    ts = interactions[S.TIMESTAMP].to_numpy()
    cutoff = int(np.quantile(ts, 1.0 - test_fraction, method="lower"))
    is_test = ts > cutoff
    return Split(np.flatnonzero(~is_test), np.flatnonzero(is_test), "temporal", cutoff)


def random_split(interactions: pd.DataFrame, test_fraction: float, seed: int) -> Split:
    """Per-user random split: each user keeps about ``1 - test_fraction`` of their rows in train.

    A user's rows are shuffled with one seeded Generator; users with a single row stay entirely in train.
    """
    rng = np.random.default_rng(seed)
    users = pd.factorize(interactions[S.USER_ID])[0]
    order = np.lexsort((rng.random(len(users)), users))  # group by user, random within user
    sorted_users = users[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_users)) + 1]
    counts = np.diff(np.r_[starts, len(users)])
    rank = np.arange(len(users)) - np.repeat(starts, counts)
    n_test = np.floor(counts * test_fraction).astype(np.int64)
    is_test_sorted = rank < np.repeat(n_test, counts)
    is_test = np.empty(len(users), dtype=bool)
    is_test[order] = is_test_sorted
    return Split(np.flatnonzero(~is_test), np.flatnonzero(is_test), "random")


def holdout_split(interactions: pd.DataFrame, test_fraction: float, seed: int) -> Split:
    """Temporal when the frame has timestamps, otherwise per-user random."""
    if S.TIMESTAMP in interactions.columns:
        return temporal_split(interactions, test_fraction)
    return random_split(interactions, test_fraction, seed)
