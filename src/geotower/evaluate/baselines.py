"""Collaborative-filtering baselines behind one small protocol, tuned on validation and scored by the same metrics.

Every baseline follows the sklearn contract: hyperparameters in the constructor, ``fit(train) -> self`` learns state
in ``*_`` attributes, and ``score(user_idx)`` returns a dense (b, n_items) block that :mod:`metrics` ranks exactly as
it ranks geotower's dot products. The matrix-factorisation models come from ``implicit``; their factors are used
directly, so no model gets its own ranking or masking code.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, Self

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp

from geotower.errors import ConfigError, NotFittedError
from geotower.evaluate.metrics import block_batch_size, evaluate_scorer, ground_truth

_SIM_BLOCK_BYTES = 1 << 27  # dense similarity block budget of ItemKNN (128 MiB)


class Baseline(Protocol):
    """What the evaluation needs from a model: fit on a user x item matrix, then score users against all items."""

    def fit(self, train: sp.csr_matrix, items: pd.DataFrame | None = None) -> Self: ...

    def score(self, user_idx: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]: ...


def _check_train(train: sp.spmatrix) -> sp.csr_matrix:
    """float32 CSR with summed duplicates: the one input shape all baselines accept."""
    out = sp.csr_matrix(train, dtype=np.float32, copy=True)
    out.sum_duplicates()
    out.eliminate_zeros()
    return out


def _require(obj: Any, attr: str) -> Any:
    if not hasattr(obj, attr):
        raise NotFittedError(f"{type(obj).__name__} is not fitted; call fit() first")
    return getattr(obj, attr)


class MostPopular:
    """Everyone gets the items with the most training users (the floor every model must beat)."""

    def fit(self, train: sp.csr_matrix, items: pd.DataFrame | None = None) -> Self:
        """Count distinct training users per item."""
        self.popularity_ = np.diff(_check_train(train).tocsc().indptr).astype(np.float32)  # (n_items,)
        return self

    def score(self, user_idx: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        popularity = _require(self, "popularity_")
        return np.broadcast_to(popularity, (len(user_idx), len(popularity)))  # metrics copies before masking


class ItemKNN:
    """Item-item cosine neighbours: score(u, j) = sum over u's items i of sim(i, j), keeping j's top neighbours.

    Args:
        n_neighbors: neighbours kept per target item (None = all).
    """

    def __init__(self, n_neighbors: int | None = 200) -> None:
        self.n_neighbors = n_neighbors

    def fit(self, train: sp.csr_matrix, items: pd.DataFrame | None = None) -> Self:
        """Cosine similarities of item columns, pruned per target item in dense blocks of bounded size."""
        if self.n_neighbors is not None and self.n_neighbors <= 0:
            raise ConfigError(f"ItemKNN n_neighbors must be > 0 or None, got {self.n_neighbors}")
        x = _check_train(train)
        self.train_ = x
        self.sim_ = _cosine_neighbours(x, self.n_neighbors)  # (n_items, n_items): rows = source, cols = target
        return self

    def score(self, user_idx: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        sim = _require(self, "sim_")
        return np.asarray((self.train_[user_idx] @ sim).toarray(), dtype=np.float32)  # (b, n_items)


def _cosine_neighbours(x: sp.csr_matrix, n_neighbors: int | None) -> sp.csr_matrix:
    """Sparse (source, target) cosine matrix with the ``n_neighbors`` best sources per target, self excluded."""
    n_items = x.shape[1]
    xt = x.T.tocsr()  # (n_items, n_users)
    norms = np.sqrt(np.asarray(xt.multiply(xt).sum(axis=1)).ravel())
    xt = sp.diags(np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0).astype(np.float32)) @ xt
    xt = sp.csr_matrix(xt, dtype=np.float32)
    keep = n_items if n_neighbors is None else min(n_neighbors, n_items)
    block = max(1, _SIM_BLOCK_BYTES // (4 * max(n_items, 1)))
    parts = []
    for start in range(0, n_items, block):
        targets = np.arange(start, min(start + block, n_items))
        sim = np.asarray((xt[targets] @ xt.T).toarray(), dtype=np.float32)  # (bs, n_items): target x source
        sim[np.arange(len(targets)), targets] = 0.0
        parts.append(_top_per_row(sim, keep))
    return sp.csr_matrix(sp.vstack(parts).T)  # (source, target)


def _top_per_row(dense: npt.NDArray[np.float32], keep: int) -> sp.csr_matrix:
    """Keep the ``keep`` largest entries of each row (zeros dropped) as CSR."""
    if keep < dense.shape[1]:
        cols = np.argpartition(-dense, keep - 1, axis=1)[:, :keep]
        vals = np.take_along_axis(dense, cols, axis=1)
        indptr = np.arange(len(dense) + 1) * keep
        out = sp.csr_matrix((vals.ravel(), cols.ravel(), indptr), shape=dense.shape)
    else:
        out = sp.csr_matrix(dense)
    out.eliminate_zeros()
    return out


class _ImplicitMF:
    """Shared fit/score of the ``implicit`` factor models: scores are plain user x item factor dot products."""

    def _make(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def fit(self, train: sp.csr_matrix, items: pd.DataFrame | None = None) -> Self:
        """Fit with BLAS pinned to one thread (implicit parallelises itself; nested pools are ~10x slower)."""
        import implicit.cpu  # noqa: F401  (loads its BLAS first, so the limit below covers it)
        from threadpoolctl import threadpool_limits

        x = _check_train(train)
        with threadpool_limits(1, "blas"):  # implicit checks the BLAS pool in its constructor
            model = self._make()
            model.fit(x, show_progress=False)
        self.user_factors_ = np.asarray(model.user_factors, dtype=np.float32)  # (n_users, f)
        self.item_factors_ = np.asarray(model.item_factors, dtype=np.float32)  # (n_items, f)
        return self

    def score(self, user_idx: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        users = _require(self, "user_factors_")
        scores: npt.NDArray[np.float32] = users[user_idx] @ self.item_factors_.T  # (b, n_items)
        return scores


class ALS(_ImplicitMF):
    """implicit's conjugate-gradient ALS (Hu, Koren & Volinsky): confidence 1 + alpha * weight."""

    def __init__(self, factors: int = 64, regularization: float = 0.1, alpha: float = 10.0, iterations: int = 15,
                 seed: int = 0, threads: int = 0) -> None:
        self.factors, self.regularization, self.alpha = factors, regularization, alpha
        self.iterations, self.seed, self.threads = iterations, seed, threads

    def _make(self) -> Any:
        from implicit.cpu.als import AlternatingLeastSquares

        return AlternatingLeastSquares(factors=self.factors, regularization=self.regularization, alpha=self.alpha,
                                       iterations=self.iterations, num_threads=self.threads,
                                       random_state=self.seed)


class BPRMF(_ImplicitMF):
    """implicit's BPR matrix factorisation (item bias folded into the factors, so dot products rank correctly).

    Its SGD is Hogwild across threads, so only ``threads=1`` is bit-for-bit reproducible for a seed.
    """

    def __init__(self, factors: int = 64, learning_rate: float = 0.05, regularization: float = 0.01,
                 iterations: int = 100, seed: int = 0, threads: int = 0) -> None:
        self.factors, self.learning_rate, self.regularization = factors, learning_rate, regularization
        self.iterations, self.seed, self.threads = iterations, seed, threads

    def _make(self) -> Any:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        return BayesianPersonalizedRanking(factors=self.factors, learning_rate=self.learning_rate,
                                           regularization=self.regularization, iterations=self.iterations,
                                           num_threads=self.threads, random_state=self.seed)


class TimeDecayPopularity:
    """Everyone gets the items most chosen *lately*: each training positive counts ``0.5 ** (age / half_life)``.

    On MovieLens-100K's temporal split this list (half-life tuned on validation) beats every factor model: what
    people choose next drifts. Without timestamps it is :class:`MostPopular` by weight.

    Args:
        half_life_days: the age at which an interaction counts half.
    """

    def __init__(self, half_life_days: float = 7.0) -> None:
        self.half_life_days = half_life_days

    def fit(self, train: sp.csr_matrix, items: pd.DataFrame | None = None,
            events: tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]] | None = None) -> Self:
        """Decayed counts at the latest timestamp; ``events`` = (item index, timestamp in seconds) of positives."""
        if self.half_life_days <= 0:
            raise ConfigError(f"TimeDecayPopularity half_life_days must be > 0, got {self.half_life_days}")
        n_items = train.shape[1]
        if events is None or len(events[0]) == 0:
            self.popularity_ = np.asarray(_check_train(train).sum(axis=0), dtype=np.float32).ravel()
            return self
        item, t = np.asarray(events[0], dtype=np.int64), np.asarray(events[1], dtype=np.float64)
        age_days = (t.max() - t) / 86_400.0
        w = np.exp2(-age_days / self.half_life_days)
        pop = np.bincount(item, weights=w, minlength=n_items)
        self.popularity_ = (pop + 1e-9 * np.bincount(item, minlength=n_items)).astype(np.float32)  # ties: all-time
        return self

    def score(self, user_idx: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        popularity = _require(self, "popularity_")
        return np.broadcast_to(popularity, (len(user_idx), len(popularity)))


EASE_MAX_ITEMS = 20_000  # a dense float64 items x items inverse: 3.2 GB at 20k items


class EASE:
    """Embarrassingly shallow autoencoder (Steck 2019): the closed-form item-item ridge regression with a zero diagonal.

    One dense ``n_items x n_items`` inverse: strong on small catalogues, refused beyond ``max_items`` (the inverse is
    O(n^3) time and 4 n^2 bytes; 20,000 items = 1.6 GB).

    Args:
        l2: ridge strength.
        max_items: largest catalogue accepted.
    """

    def __init__(self, l2: float = 100.0, max_items: int = EASE_MAX_ITEMS) -> None:
        self.l2, self.max_items = l2, max_items

    def fit(self, train: sp.csr_matrix, items: pd.DataFrame | None = None) -> Self:
        """B = I - P / diag(P) with P = (X'X + l2 I)^-1 on the binarised train matrix."""
        x = _check_train(train)
        n = x.shape[1]
        if n > self.max_items:
            raise ConfigError(f"EASE: {n} items exceed max_items={self.max_items} (a dense {n}x{n} inverse)")
        x.data[:] = 1.0
        gram = np.asarray((x.T @ x).toarray(), dtype=np.float64)
        gram[np.diag_indices(n)] += self.l2
        p = np.linalg.inv(gram)
        b = -p / np.diag(p)[None, :]
        b[np.diag_indices(n)] = 0.0
        self.train_, self.weights_ = x, b.astype(np.float32)
        return self

    def score(self, user_idx: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        weights = _require(self, "weights_")
        return np.asarray(self.train_[user_idx] @ weights, dtype=np.float32)  # (b, n_items)


class RP3beta:
    """Random walks item -> user -> item, popularity-discounted (Paudel et al. 2017).

    ``W[i, j] = (P(i -> u -> j)) ** alpha / pop(j) ** beta``, the ``n_neighbors`` best sources kept per target;
    ``score(u, j) = sum over u's items i of W[i, j]``.

    Args:
        alpha: sharpening of the transition probabilities.
        beta: popularity discount of the target item.
        n_neighbors: sources kept per target item.
    """

    def __init__(self, alpha: float = 1.0, beta: float = 0.5, n_neighbors: int = 200) -> None:
        self.alpha, self.beta, self.n_neighbors = alpha, beta, n_neighbors

    def fit(self, train: sp.csr_matrix, items: pd.DataFrame | None = None) -> Self:
        """Row-normalised user->item and item->user transitions, multiplied in dense blocks of targets."""
        if self.n_neighbors <= 0:
            raise ConfigError(f"RP3beta n_neighbors must be > 0, got {self.n_neighbors}")
        x = _check_train(train)
        x.data[:] = 1.0
        n_items = x.shape[1]
        deg_u = np.asarray(x.sum(axis=1)).ravel()
        pop = np.asarray(x.sum(axis=0)).ravel()
        p_ui = sp.csr_matrix(sp.diags(1.0 / np.maximum(deg_u, 1.0)) @ x, dtype=np.float32)  # (users, items)
        p_iu = sp.csr_matrix(sp.diags(1.0 / np.maximum(pop, 1.0)) @ x.T, dtype=np.float32)  # (items, users)
        discount = (1.0 / np.maximum(pop, 1.0) ** self.beta).astype(np.float32)
        p_ui_t = p_ui.T.tocsr()  # (items, users): row j = transitions into target j
        keep = min(self.n_neighbors, n_items)
        block = max(1, _SIM_BLOCK_BYTES // (4 * max(n_items, 1)))
        parts = []
        for start in range(0, n_items, block):
            targets = np.arange(start, min(start + block, n_items))
            w = np.asarray((p_ui_t[targets] @ p_iu.T).toarray(), dtype=np.float32)  # (bs, sources): P(i -> j)
            w = np.power(w, self.alpha, dtype=np.float32) * discount[targets][:, None]
            w[np.arange(len(targets)), targets] = 0.0
            parts.append(_top_per_row(w, keep))
        self.train_ = x
        self.sim_ = sp.csr_matrix(sp.vstack(parts).T)  # (source, target)
        return self

    def score(self, user_idx: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        sim = _require(self, "sim_")
        return np.asarray((self.train_[user_idx] @ sim).toarray(), dtype=np.float32)


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
