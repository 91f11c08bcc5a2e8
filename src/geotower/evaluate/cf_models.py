"""The collaborative-filtering baselines themselves, each behind the :class:`Baseline` protocol (sklearn contract).

Hyperparameters in the constructor, ``fit(train) -> self`` learns state in ``*_`` attributes, ``score(user_idx)``
returns a dense (b, n_items) block that :mod:`geotower.evaluate.metrics` ranks exactly as it ranks geotower's dot
products. The matrix-factorisation models come from ``implicit``; their factors are used directly. The registry
and the tuning on validation are in :mod:`geotower.evaluate.baselines`.
"""

from __future__ import annotations

from typing import Any, Protocol, Self

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp

from geotower.errors import ConfigError, require_fitted

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


class MostPopular:
    """Everyone gets the items with the most training users (the floor every model must beat)."""

    def fit(self, train: sp.csr_matrix, items: pd.DataFrame | None = None) -> Self:
        """Count distinct training users per item."""
        self.popularity_ = np.diff(_check_train(train).tocsc().indptr).astype(np.float32)  # (n_items,)
        return self

    def score(self, user_idx: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        popularity = require_fitted(self, "popularity_")
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
        sim = require_fitted(self, "sim_")
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
        users = require_fitted(self, "user_factors_")
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
        popularity = require_fitted(self, "popularity_")
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
        weights = require_fitted(self, "weights_")
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
        sim = require_fitted(self, "sim_")
        return np.asarray((self.train_[user_idx] @ sim).toarray(), dtype=np.float32)
