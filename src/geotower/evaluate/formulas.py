"""The metric formulas: Recall, NDCG, HitRate, Precision and truncated Recall at K of top-K id arrays (pure numpy)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from geotower.errors import DataError

__all__ = ["METRIC_NAMES", "ground_truth", "hit_matrix", "topk_metrics"]

METRIC_NAMES: tuple[str, ...] = ("recall", "ndcg", "hitrate", "precision", "recall_trunc")


def _dedupe_binary(m: sp.spmatrix) -> sp.csr_matrix:
    """Binary CSR with sorted indices and explicit zeros dropped."""
    m = sp.csr_matrix(m, copy=True)
    m.eliminate_zeros()
    m.sum_duplicates()
    m.data = np.ones_like(m.data, dtype=np.float32)
    m.sort_indices()
    return m


def hit_matrix(topk: npt.NDArray[np.integer], relevant: sp.csr_matrix) -> npt.NDArray[np.bool_]:
    """(n, k) bool: whether ``topk[i, j]`` is a relevant item of row i (one searchsorted over flat keys)."""
    n, n_items = relevant.shape
    rel = _dedupe_binary(relevant)
    rel_keys = np.repeat(np.arange(n, dtype=np.int64), np.diff(rel.indptr)) * n_items + rel.indices
    keys = np.arange(n, dtype=np.int64)[:, None] * n_items + topk.astype(np.int64)  # (n, k)
    pos = np.searchsorted(rel_keys, keys)
    pos = np.minimum(pos, max(len(rel_keys) - 1, 0))
    return (rel_keys[pos] == keys) if len(rel_keys) else np.zeros(keys.shape, dtype=bool)


def topk_metrics(topk: npt.NDArray[np.integer], relevant: sp.csr_matrix, k: int) -> dict[str, float]:
    """Mean Recall, NDCG, HitRate, Precision and truncated Recall at K over the rows.

    Worked example (K=3): relevant = {2, 5}, topk = [5, 1, 2] -> hits at ranks 1 and 3;
    recall = 2/2, precision = 2/3, DCG = 1/log2(2) + 1/log2(4) = 1.5, IDCG = 1 + 1/log2(3) = 1.631, NDCG = 0.920.

    Args:
        topk: (n, >=k) item indices, best first (only the first K columns are used).
        relevant: (n, n_items) binary CSR of ground-truth items; every row must have >= 1.
        k: cut-off.

    Returns:
        {"recall", "ndcg", "hitrate", "precision", "recall_trunc"}: each a mean over rows (0.0 when n = 0).

    Raises:
        DataError: shapes disagree or a row has no relevant item.
    """
    relevant = sp.csr_matrix(relevant)
    if topk.ndim != 2 or topk.shape[0] != relevant.shape[0] or topk.shape[1] < k:
        raise DataError(f"topk shape {topk.shape} does not fit relevant {relevant.shape} at K={k}")
    if relevant.shape[0] == 0:
        return {name: 0.0 for name in METRIC_NAMES}
    rel = _dedupe_binary(relevant)
    n_rel = np.diff(rel.indptr).astype(np.float64)  # (n,)
    if (n_rel == 0).any():
        raise DataError(f"{int((n_rel == 0).sum())} rows have no relevant item; drop them before computing metrics")
    hits = hit_matrix(topk[:, :k], rel)  # (n, k)
    n_hits = hits.sum(axis=1).astype(np.float64)
    discount = 1.0 / np.log2(np.arange(2, k + 2))  # (k,) 1/log2(rank + 1)
    dcg = hits @ discount
    ideal = np.cumsum(discount)[np.minimum(n_rel, k).astype(np.int64) - 1]
    trunc = np.minimum(n_rel, k)
    return {
        "recall": float(np.mean(n_hits / n_rel)),
        "ndcg": float(np.mean(dcg / ideal)),
        "hitrate": float(np.mean(n_hits > 0)),
        "precision": float(np.mean(n_hits / k)),
        "recall_trunc": float(np.mean(n_hits / trunc)),
    }


def ground_truth(relevant: sp.csr_matrix, seen: sp.csr_matrix | None) -> sp.csr_matrix:
    """Relevant items minus the ones already seen in train (any rating): those can never be recommended."""
    rel = _dedupe_binary(relevant)
    if seen is None:
        return rel
    seen_bin = _dedupe_binary(seen)
    out = sp.csr_matrix(rel - rel.multiply(seen_bin))
    out.eliminate_zeros()
    return out
