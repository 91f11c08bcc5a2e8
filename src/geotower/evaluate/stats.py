"""Per-user metrics, standard errors and paired tests: is a difference between two models larger than its noise?

A metric is a mean over users, so its standard error is the per-user standard deviation over sqrt(n). Two models
scored on the same users are compared *paired*: the per-user differences cancel the users' own difficulty, which is
most of the variance, so a paired test separates models whose unpaired error bars overlap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy import stats as st

from geotower.evaluate.metrics import block_batch_size, ground_truth, hit_matrix, rank_topk


@dataclass(frozen=True)
class PerUser:
    """Per-user NDCG@K and Recall@K of one model over the evaluable users (same users for every model)."""

    users: npt.NDArray[np.int64]
    ndcg: npt.NDArray[np.float64]
    recall: npt.NDArray[np.float64]


@dataclass(frozen=True)
class Paired:
    """A paired comparison of model A against model B on one metric."""

    diff: float  # mean(A - B)
    se: float  # standard error of the mean difference
    t: float
    p_value: float  # two-sided paired t-test; nan with < 2 users
    n: int


def per_user_from_topk(topk: npt.NDArray[np.integer], truth: sp.csr_matrix, k: int
                       ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(ndcg, recall) per row of ``topk`` against ``truth`` (binary CSR rows, each with >= 1 item)."""
    hits = hit_matrix(topk[:, :k], truth)  # (n, k)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    n_rel = np.diff(sp.csr_matrix(truth).indptr)
    ndcg = (hits @ discount) / np.cumsum(discount)[np.minimum(n_rel, k) - 1]
    recall = hits.sum(axis=1) / n_rel
    return ndcg.astype(np.float64), recall.astype(np.float64)


def per_user(score_fn: Callable[[np.ndarray], np.ndarray], users: npt.NDArray[np.integer], relevant: sp.csr_matrix,
             seen: sp.csr_matrix | None, k: int) -> PerUser:
    """Per-user metrics with the masking and user selection of :func:`geotower.evaluate.metrics.evaluate_scorer`."""
    truth = ground_truth(relevant, seen)
    asked: npt.NDArray[np.int64] = np.asarray(users, dtype=np.int64)
    evaluable: npt.NDArray[np.int64] = asked[np.diff(truth.indptr)[asked] > 0]
    seen_csr = None if seen is None else sp.csr_matrix(seen)
    step = block_batch_size(relevant.shape[1])
    topk = np.empty((len(evaluable), k), dtype=np.int64)
    for s in range(0, len(evaluable), step):
        batch = evaluable[s:s + step]
        topk[s:s + len(batch)] = rank_topk(np.array(score_fn(batch), dtype=np.float32),
                                           None if seen_csr is None else seen_csr[batch], k)
    ndcg, recall = per_user_from_topk(topk, truth[evaluable], k)
    return PerUser(evaluable, ndcg, recall)


def standard_error(values: npt.NDArray[np.floating]) -> float:
    """Standard error of the mean (nan with fewer than two values)."""
    v = np.asarray(values, dtype=np.float64)
    return float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")


def paired_test(a: npt.NDArray[np.floating], b: npt.NDArray[np.floating]) -> Paired:
    """Paired t-test of ``a - b`` (same users, same order).

    Raises:
        ValueError: the arrays differ in length.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired arrays differ in shape: {a.shape} vs {b.shape}")
    d = a - b
    se = standard_error(d)
    if len(d) < 2:
        return Paired(float(d.mean()) if len(d) else 0.0, se, float("nan"), float("nan"), len(d))
    if se == 0.0:  # identical rankings (or a constant difference): no evidence either way beyond the mean
        return Paired(float(d.mean()), 0.0, float("nan"), 1.0 if d.mean() == 0 else 0.0, len(d))
    t = float(d.mean() / se)
    return Paired(float(d.mean()), se, t, float(2 * st.t.sf(abs(t), len(d) - 1)), len(d))
