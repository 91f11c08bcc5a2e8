"""The baselines' registry and their tuning on validation: every model is scored by the same metrics as geotower.

The models themselves (MostPopular, time-decayed popularity, ItemKNN, RP3beta, EASE, implicit ALS and BPR-MF) are in
:mod:`geotower.evaluate.cf_models`, re-exported here; this module names them, holds their default grids and picks
each one's best params on a validation split carved from train (:func:`tune_and_fit`).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp

from geotower.errors import ConfigError
from geotower.evaluate.cf_models import (
    ALS,
    BPRMF,
    EASE,
    EASE_MAX_ITEMS,
    Baseline,
    ItemKNN,
    MostPopular,
    RP3beta,
    TimeDecayPopularity,
)
from geotower.evaluate.metrics import block_batch_size, evaluate_scorer, ground_truth

__all__ = ["ALS", "BPRMF", "DEFAULT_GRIDS", "DISPLAY_NAMES", "EASE", "EASE_MAX_ITEMS", "FACTORIES", "Baseline",
           "ItemKNN", "MostPopular", "RP3beta", "TimeDecayPopularity", "Tuned", "grid", "has_ground_truth", "make",
           "tune_and_fit"]

# --- registry and tuning --------------------------------------------------------------------------
FACTORIES: dict[str, Callable[..., Baseline]] = {"popular": MostPopular, "itemknn": ItemKNN, "als": ALS,
                                                 "bpr": BPRMF, "ease": EASE, "rp3beta": RP3beta,
                                                 "recent": TimeDecayPopularity}
DISPLAY_NAMES = {"popular": "MostPopular", "itemknn": "ItemKNN (cosine)", "als": "ALS (implicit)",
                 "bpr": "BPR-MF (implicit)", "ease": "EASE", "rp3beta": "RP3beta",
                 "recent": "time-decayed popularity"}
TIMED = {"recent"}  # fit(train, items, events=(item index, timestamp seconds)) of the positive rows
SEEDED = {"als", "bpr"}  # constructors that take seed/threads
DEFAULT_GRIDS: dict[str, dict[str, Sequence[Any]]] = {
    "popular": {},
    "itemknn": {"n_neighbors": (50, 200, 1000)},  # "all" can be a dense n_items^2 matrix on Yelp-size catalogues
    "als": {"factors": (32, 64, 128), "regularization": (0.01, 0.1, 1.0), "alpha": (1.0, 10.0)},
    "bpr": {"factors": (32, 64, 128), "learning_rate": (0.01, 0.05)},
    "ease": {"l2": (10.0, 50.0, 200.0, 1000.0)},
    "rp3beta": {"alpha": (0.5, 1.0), "beta": (0.0, 0.3, 0.6), "n_neighbors": (100, 500)},
    "recent": {"half_life_days": (1.0, 3.0, 10.0, 30.0, 100.0, 1000.0)},
}


@dataclass
class Tuned:
    """A baseline refitted with its best validation params."""

    name: str
    model: Baseline
    params: dict[str, Any]
    val_ndcg: float | None  # None when there was nothing to tune
    fit_s: float  # wall time of the final fit on the full train part
    tune_s: float  # wall time of the grid search


def grid(spec: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """All combinations of a {param: values} grid, in a fixed order (the empty grid has one point)."""
    keys = list(spec)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(spec[k] for k in keys))]


def has_ground_truth(relevant: sp.csr_matrix, seen: sp.csr_matrix) -> bool:
    """Whether any user has a relevant item they have not seen (otherwise there is nothing to tune on)."""
    nnz: int = ground_truth(relevant, seen).nnz
    return nnz > 0


Events = tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]


def _fit(model: Baseline, name: str, train: sp.csr_matrix, items: pd.DataFrame | None, events: Events | None
         ) -> Baseline:
    """``model.fit``, handing the time-aware baselines their events."""
    if name in TIMED:
        return model.fit(train, items, events=events)  # type: ignore[call-arg]
    return model.fit(train, items)


def make(name: str, params: Mapping[str, Any], seed: int = 0, threads: int = 0) -> Baseline:
    """Build a registered baseline by name.

    Raises:
        ConfigError: unknown name.
    """
    if name not in FACTORIES:
        raise ConfigError(f"unknown baseline {name!r}; available: {', '.join(FACTORIES)}")
    extra = {"seed": seed, "threads": threads} if name in SEEDED else {}
    return FACTORIES[name](**params, **extra)


def tune_and_fit(name: str, train: sp.csr_matrix, val_train: sp.csr_matrix, val_relevant: sp.csr_matrix, k: int,
                 grid_spec: Mapping[str, Sequence[Any]] | None = None, seed: int = 0, threads: int = 0,
                 items: pd.DataFrame | None = None, val_seen: sp.csr_matrix | None = None,
                 events: Events | None = None, val_events: Events | None = None) -> Tuned:
    """Pick params by validation NDCG@K (fit on ``val_train``), then refit on the full ``train`` part.

    The test interactions never reach this function, so the test metrics stay an honest estimate.

    Args:
        name: registered baseline name.
        train: (n_users, n_items) full train part, used for the final fit.
        val_train: (n_users, n_items) train part minus the validation rows.
        val_relevant: (n_users, n_items) validation positives.
        k: metric cut-off for selection.
        grid_spec: {param: values}; defaults to :data:`DEFAULT_GRIDS`.
        seed: random state of the seeded models.
        threads: implicit's thread count (0 = all cores).
        items: item table for content-aware baselines (unused by the CF ones).
        val_seen: items masked during validation (any rating); defaults to ``val_train``'s entries.
        events, val_events: (item index, timestamp seconds) of the positives of ``train`` / ``val_train``, for the
            time-aware baselines (:data:`TIMED`); None = no timestamps.

    Returns:
        the refitted model; ``params`` are the constructor defaults and ``val_ndcg`` None when the validation split
        has no unseen positive to select on.
    """
    points = grid(DEFAULT_GRIDS.get(name, {}) if grid_spec is None else grid_spec)
    best, best_ndcg, t0 = points[0], None, time.perf_counter()
    users = np.arange(train.shape[0])
    seen = val_train if val_seen is None else val_seen
    if not has_ground_truth(val_relevant, seen):
        best = {}  # nothing to select on: the constructor defaults, not an arbitrary grid corner
    elif len(points) > 1:
        for params in points:
            model = _fit(make(name, params, seed, threads), name, val_train, items, val_events)
            ndcg = evaluate_scorer(model.score, users, val_relevant, seen, k, block_batch_size(train.shape[1]))["ndcg"]
            if best_ndcg is None or ndcg > best_ndcg:
                best, best_ndcg = params, ndcg
    tune_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = _fit(make(name, best, seed, threads), name, train, items, events)
    return Tuned(name, model, dict(best), best_ndcg, time.perf_counter() - t0, tune_s)
