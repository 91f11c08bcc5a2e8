"""Top-K ranking metrics over the whole catalogue: pure functions, batched, no per-user Python loop.

Every model (the two towers, each baseline, an oracle) is judged by the same three functions: :func:`rank_topk`
turns a block of scores into top-K item indices with train-seen items masked, :func:`topk_metrics` compares those
indices with the ground truth, and :func:`evaluate_scorer` runs both over all evaluable users in batches. Keeping one
code path is what makes the comparison between geotower and its baselines honest. Selection uses ``torch.topk``
(faster than numpy's argpartition, and it returns only K columns) with an exact numpy path for ties and NaN.
:func:`evaluate_embeddings` gives the same answer for dot-product towers without dense score blocks: FAISS exact
inner-product search (a fused, multi-threaded GEMM + heap) finds the candidates, and users it cannot settle exactly go
through the dense path above.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from tqdm.auto import tqdm

from geotower.errors import ConfigError, DataError, GeotowerWarning

METRIC_NAMES: tuple[str, ...] = ("recall", "ndcg", "hitrate", "precision", "recall_trunc")


def block_batch_size(n_items: int, max_users: int = 1024, max_bytes: int = 1 << 27) -> int:
    """Users per scoring block so one (b, n_items) float32 block stays under ``max_bytes`` (128 MiB)."""
    return int(max(1, min(max_users, max_bytes // (4 * max(n_items, 1)))))


def check_k(k: int, n_items: int) -> None:
    """Reject a K that cannot give meaningful metrics.

    Raises:
        ConfigError: K <= 0, or K larger than the catalogue (every item would be "recommended").
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
        raise ConfigError(f"K must be a positive integer, got {k!r}")
    if k > n_items:
        raise ConfigError(f"K={k} is larger than the catalogue ({n_items} items); choose K <= {n_items}")


def rank_topk(scores: npt.NDArray[np.floating], exclude: sp.csr_matrix | None, k: int) -> npt.NDArray[np.int64]:
    """Indices of the K best items per row, best first; ties go to the lower item index.

    A partial selection (``torch.topk``, ``argpartition``) picks an arbitrary member of a tie at the K-th place,
    which would make metrics depend on library versions; rows with such a boundary tie are resolved exactly
    (all such rows at once, vectorised).

    Args:
        scores: (b, n_items) float scores; NaN counts as -inf. Not modified.
        exclude: (b, n_items) CSR of items to mask (e.g. train-seen), or None.
        k: list length, 1 <= k <= n_items.

    Returns:
        (b, k) int64 item indices.

    Raises:
        ConfigError: bad K.
    """
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise DataError(f"scores must be 2-D (batch, n_items), got shape {scores.shape}")
    check_k(k, scores.shape[1])
    return _rank_excluding(scores, exclude, k)


def _rank_excluding(scores: npt.NDArray[Any], exclude: sp.csr_matrix | None, k: int) -> npt.NDArray[np.int64]:
    """Mask, rank, then put the masked values back: the caller's array is unchanged and never copied whole.

    A (b, n_items) copy per batch costs as much as the ranking itself, so writable float blocks are masked in place
    and restored in ``finally``; read-only or non-float blocks (e.g. a broadcast popularity row) are copied.
    """
    if not np.issubdtype(scores.dtype, np.floating) or not scores.flags.writeable:
        scores = np.array(scores, dtype=np.result_type(scores, np.float32))
    if exclude is None:
        return _fast_topk(scores, k)
    exclude = sp.csr_matrix(exclude)
    if exclude.shape != scores.shape:
        raise DataError(f"exclude matrix shape {exclude.shape} does not match scores shape {scores.shape}")
    rows = np.repeat(np.arange(exclude.shape[0]), np.diff(exclude.indptr))
    saved = scores[rows, exclude.indices]
    scores[rows, exclude.indices] = -np.inf
    try:
        return _fast_topk(scores, k)
    finally:
        scores[rows, exclude.indices] = saved


def _fast_topk(scores: npt.NDArray[np.floating], k: int) -> npt.NDArray[np.int64]:
    """Top-K via ``torch.topk`` (2-3x faster than argpartition and returns only K columns), exact on ties.

    Asking for K+1 reveals a tie straddling the K-th place for free; those rows, and rows holding NaN (which torch
    ranks first), go through the exact numpy path. Ties inside the list are ordered by item index.
    """
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency; keep the numpy path usable alone
        return _rank_masked(np.nan_to_num(scores, nan=-np.inf, posinf=np.inf), k)
    n = scores.shape[1]
    block = torch.from_numpy(scores if all(st >= 0 for st in scores.strides) else np.ascontiguousarray(scores))
    vals_t, idx_t = torch.topk(block, min(k + 1, n), dim=1)  # (b, k+1) sorted desc
    vals, idx = vals_t.numpy(), idx_t.numpy()
    redo = np.isnan(vals).any(axis=1)
    if vals.shape[1] > k:
        redo |= vals[:, k] == vals[:, k - 1]
    vals, idx = vals[:, :k].copy(), idx[:, :k].copy()
    if redo.any():
        rows = np.flatnonzero(redo)
        sub = np.nan_to_num(scores[rows], nan=-np.inf, posinf=np.inf, neginf=-np.inf)
        idx[rows] = _rank_masked(sub, k)
        vals[rows] = np.take_along_axis(sub, idx[rows], axis=1)
    order = np.lexsort((idx, -vals), axis=1)  # by score desc, then index asc
    return np.take_along_axis(idx, order, axis=1).astype(np.int64)


def _rank_masked(scores: npt.NDArray[np.floating], k: int) -> npt.NDArray[np.int64]:
    """Top-K of already-masked, NaN-free scores (see :func:`rank_topk`)."""
    b, n = scores.shape
    cand = np.argpartition(-scores, k - 1, axis=1)[:, :k]  # (b, k) unordered, boundary ties arbitrary
    cand_scores = np.take_along_axis(scores, cand, axis=1)
    kth = cand_scores.min(axis=1)  # (b,) the K-th best value
    n_ge = (scores >= kth[:, None]).sum(axis=1)  # more than k items reach it => a tie straddles the boundary
    tied = np.flatnonzero(n_ge > k)
    if len(tied):
        cand[tied] = _resolve_ties(scores[tied], kth[tied], k)
        cand_scores[tied] = np.take_along_axis(scores[tied], cand[tied], axis=1)
    order = np.lexsort((cand, -cand_scores), axis=1)  # by score desc, then index asc
    return np.take_along_axis(cand, order, axis=1).astype(np.int64)


def _resolve_ties(scores: npt.NDArray[np.floating], kth: npt.NDArray[np.floating], k: int) -> npt.NDArray[np.int64]:
    """For rows whose K-th value is tied: all items above it plus the lowest-index tied items up to K."""
    above = scores > kth[:, None]  # (t, n)
    equal = scores == kth[:, None]
    need = k - above.sum(axis=1)  # (t,) how many tied items fit
    take_equal = equal & (np.cumsum(equal, axis=1) <= need[:, None])
    rows, cols = np.nonzero(above | take_equal)  # exactly k per row, row-major order
    return cols.reshape(len(scores), k)


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


def evaluate_scorer(
    score_fn: Callable[[np.ndarray], np.ndarray],
    users: npt.NDArray[np.integer],
    relevant: sp.csr_matrix,
    seen: sp.csr_matrix | None,
    k: int,
    batch_size: int = 1024,
    progress: bool = False,
) -> dict[str, float]:
    """Score, mask and rank all items for many users in batches, then compute the metrics at K.

    Ground truth is ``relevant`` minus ``seen`` (a seen item is masked, so it could never be a hit); only users with
    at least one such item are evaluated.

    Args:
        score_fn: maps a (b,) int64 array of user indices to (b, n_items) scores (higher is better).
        users: (n,) user indices to consider.
        relevant: (n_users_total, n_items) CSR of ground-truth items, indexed by user index.
        seen: (n_users_total, n_items) CSR of train-seen items to mask, or None.
        k: cut-off (1 <= k <= n_items).
        batch_size: users per score_fn call; bounds memory at batch_size x n_items floats.
        progress: show a tqdm bar.

    Returns:
        :func:`topk_metrics` plus ``"users"``: how many users were evaluated.

    Raises:
        ConfigError: bad K or batch size. DataError: score_fn returned the wrong shape.
    """
    n_items = relevant.shape[1]
    truth, users = _evaluable(users, relevant, seen, k, batch_size)
    if len(users) == 0:
        return _no_users()
    seen_csr = None if seen is None else sp.csr_matrix(seen)
    topk = np.empty((len(users), k), dtype=np.int64)
    starts = range(0, len(users), batch_size)
    for start in tqdm(starts, desc="evaluate", unit="batch", disable=not progress):
        batch = users[start : start + batch_size]
        topk[start : start + len(batch)] = _rank_batch(score_fn, batch, seen_csr, n_items, k)
    return {**topk_metrics(topk, truth[users], k), "users": int(len(users))}


def _evaluable(users: npt.NDArray[np.integer], relevant: sp.csr_matrix, seen: sp.csr_matrix | None, k: int,
               batch_size: int) -> tuple[sp.csr_matrix, npt.NDArray[np.int64]]:
    """Check the arguments both evaluators share; return the ground truth and the users that have some."""
    check_k(k, relevant.shape[1])
    if batch_size <= 0:
        raise ConfigError(f"batch_size must be > 0, got {batch_size}")
    if seen is not None and seen.shape != relevant.shape:
        raise DataError(f"seen shape {seen.shape} differs from relevant shape {relevant.shape}")
    truth = ground_truth(relevant, seen)
    users = np.asarray(users, dtype=np.int64)
    return truth, users[np.diff(truth.indptr)[users] > 0]


def _no_users() -> dict[str, float]:
    warnings.warn("no user has a ground-truth item; metrics are 0", GeotowerWarning, stacklevel=3)
    return {**{name: 0.0 for name in METRIC_NAMES}, "users": 0}


def _rank_batch(
    score_fn: Callable[[np.ndarray], np.ndarray],
    batch: npt.NDArray[np.int64],
    seen: sp.csr_matrix | None,
    n_items: int,
    k: int,
) -> npt.NDArray[np.int64]:
    """Top-K for one batch of users (the score block is left as score_fn returned it)."""
    scores = np.asarray(score_fn(batch))
    if scores.shape != (len(batch), n_items):
        raise DataError(f"score_fn returned shape {scores.shape}, expected {(len(batch), n_items)}")
    return _rank_excluding(scores, None if seen is None else seen[batch], k)


# FAISS path of evaluate_embeddings: a user needing more neighbours than this (K + seen + 1) is ranked densely, where
# one GEMM row and a partial selection beat FAISS's heap; the fraction keeps small catalogues on the dense path too.
_FAISS_MAX_CANDIDATES = 1024
_FAISS_MAX_FRACTION = 0.5
# Above this bound on |<u, v>| (max user norm x max item norm) float32 sums could overflow to inf/NaN, which FAISS's
# heap does not rank like the dense path (NaN = -inf); such inputs are ranked densely.
_FAISS_MAX_SCORE = 1e37
# Users per FAISS search at least: FAISS blocks queries by 4096 internally, and 1024-user searches ran ~1.5x slower.
# Memory stays small: 4096 x 1024 candidates x 12 bytes = 48 MiB at most.
_FAISS_QUERY_BLOCK = 4096


def evaluate_embeddings(
    user_emb: npt.NDArray[np.floating],
    item_emb: npt.NDArray[np.floating],
    users: npt.NDArray[np.integer],
    relevant: sp.csr_matrix,
    seen: sp.csr_matrix | None,
    k: int,
    batch_size: int = 1024,
    progress: bool = False,
) -> dict[str, float]:
    """:func:`evaluate_scorer` for dot-product scores ``user_emb[u] @ item_emb.T``, with FAISS instead of score blocks.

    Returns what ``evaluate_scorer(lambda b: user_emb[b] @ item_emb.T, users, relevant, seen, k)`` returns for float32
    embeddings (same keys, ground truth, evaluable users, tie rule and errors), about 2x faster on large catalogues.

    How: each user asks FAISS's exact inner-product search (``faiss.knn``, no index, no copy of the item matrix) for
    ``k + n_seen(u) + 1`` neighbours, rounded up to a power of two so users are searched in a few buckets; the seen
    items are dropped and the best K + 1 kept. Those are the exact top K unless the K-th and (K+1)-th kept scores are
    equal (a tie straddling the boundary, which FAISS breaks arbitrarily) or a score is not finite; such users, users
    needing more than ``min(1024, n_items / 2)`` neighbours, and everything when an embedding is not finite (or large
    enough to overflow) go through the dense exact path (:func:`rank_topk` on ``user_emb[b] @ item_emb.T``). The K
    are ordered by score, then item index, as in :func:`rank_topk`.

    Note: FAISS sums the inner products in another order than numpy's matmul, so a score may differ in its last float
    bits; two items whose scores are that close can swap places against :func:`evaluate_scorer`. Exact ties (e.g.
    duplicated item vectors, integer-valued embeddings) are resolved by item index on both paths.

    Args:
        user_emb: (n_users_total, d) user vectors, indexed by user index; used as float32.
        item_emb: (n_items, d) item vectors; used as float32 (converted once if needed, never per batch).
        users: (n,) user indices to consider.
        relevant: (n_users_total, n_items) CSR of ground-truth items, indexed by user index.
        seen: (n_users_total, n_items) CSR of train-seen items to mask, or None.
        k: cut-off (1 <= k <= n_items).
        batch_size: users per dense score block, bounding memory at batch_size x n_items floats; FAISS searches take
            max(batch_size, 4096) users (at most 12 bytes x 1024 candidates each).
        progress: show a tqdm bar.

    Returns:
        :func:`topk_metrics` plus ``"users"``: how many users were evaluated.

    Raises:
        ConfigError: bad K or batch size. DataError: embedding shapes do not fit ``relevant`` or each other.
    """
    n_items = relevant.shape[1]
    check_k(k, n_items)
    user_emb = np.ascontiguousarray(user_emb, dtype=np.float32)
    item_emb = np.ascontiguousarray(item_emb, dtype=np.float32)
    if user_emb.ndim != 2 or item_emb.ndim != 2 or user_emb.shape[1] != item_emb.shape[1]:
        raise DataError(f"embeddings must be (n, d) with the same d, got {user_emb.shape} and {item_emb.shape}")
    if item_emb.shape[0] != n_items:
        raise DataError(f"item_emb has {item_emb.shape[0]} rows, expected {n_items} (the catalogue)")
    raw = np.asarray(users, dtype=np.int64)
    if len(raw) and (raw.min() < 0 or raw.max() >= user_emb.shape[0]):
        raise DataError(f"user indices must lie in [0, {user_emb.shape[0]}) (rows of user_emb)")
    truth, users = _evaluable(raw, relevant, seen, k, batch_size)
    if len(users) == 0:
        return _no_users()
    seen_csr = None if seen is None else sp.csr_matrix(seen)
    topk = np.empty((len(users), k), dtype=np.int64)
    with tqdm(total=len(users), desc="evaluate", unit="user", disable=not progress) as bar:
        dense = _faiss_topk(user_emb, item_emb, users, seen_csr, k, batch_size, topk, bar)
        for start in range(0, len(dense), batch_size):
            pos = dense[start : start + batch_size]
            topk[pos] = _rank_batch(lambda b: user_emb[b] @ item_emb.T, users[pos], seen_csr, n_items, k)
            bar.update(len(pos))
    return {**topk_metrics(topk, truth[users], k), "users": int(len(users))}


def _faiss_topk(
    user_emb: npt.NDArray[np.float32],
    item_emb: npt.NDArray[np.float32],
    users: npt.NDArray[np.int64],
    seen: sp.csr_matrix | None,
    k: int,
    batch_size: int,
    out: npt.NDArray[np.int64],
    bar: Any,
) -> npt.NDArray[np.int64]:
    """Fill ``out`` for the users FAISS settles exactly; return the positions (into ``users``) left to the dense path.

    Why K + 1 kept candidates suffice: FAISS returns the ``kk`` best items; every unseen item outside them, or kept
    past the (K+1)-th, scores <= the (K+1)-th kept score. So when the K-th kept score is strictly greater than the
    (K+1)-th, the top-K set is exactly "unseen items scoring above the (K+1)-th", whatever order FAISS gave ties.
    """
    n_items = item_emb.shape[0]
    queries = user_emb[np.unique(users)]
    if not (np.isfinite(queries).all() and np.isfinite(item_emb).all()):
        return np.arange(len(users))
    max_norm = np.sqrt((queries.astype(np.float64) ** 2).sum(axis=1).max())
    if max_norm * np.sqrt((item_emb.astype(np.float64) ** 2).sum(axis=1).max()) > _FAISS_MAX_SCORE:
        return np.arange(len(users))
    import faiss  # lazy: importing metrics stays cheap

    # every stored entry is masked by the dense path (explicit zeros included), so count and drop them all here too
    seen_bin = None
    if seen is not None:
        ones = np.ones(seen.nnz, np.float32)
        seen_bin = sp.csr_matrix((ones, seen.indices.copy(), seen.indptr.copy()), shape=seen.shape)
        seen_bin.sum_duplicates()  # sorts the indices in place: hence the copies, the caller's matrix is untouched
    n_seen = np.zeros(len(users), np.int64) if seen_bin is None else np.diff(seen_bin.indptr)[users]
    need = k + n_seen + 1
    cap = min(_FAISS_MAX_CANDIDATES, int(n_items * _FAISS_MAX_FRACTION))
    # bucket size: the power of two >= need, capped (need <= cap keeps kk within [need, n_items])
    kk_of = np.minimum(2 ** np.ceil(np.log2(need)).astype(np.int64), cap)
    dense = [np.flatnonzero(need > cap)]
    step = max(batch_size, _FAISS_QUERY_BLOCK)
    for kk in np.unique(kk_of[need <= cap]):
        bucket = np.flatnonzero((kk_of == kk) & (need <= cap))
        for start in range(0, len(bucket), step):
            pos = bucket[start : start + step]
            batch = users[pos]
            vals, idx = faiss.knn(user_emb[batch], item_emb, int(kk), metric=faiss.METRIC_INNER_PRODUCT)
            keep = np.ones(idx.shape, dtype=bool) if seen_bin is None else ~hit_matrix(idx, seen_bin[batch])
            keep &= np.cumsum(keep, axis=1) <= k + 1  # the k + 1 best unseen, in FAISS's (descending) order
            rows, cols = np.nonzero(keep)  # exactly k + 1 per row, row-major
            vals = vals[rows, cols].reshape(len(pos), k + 1)
            idx = idx[rows, cols].reshape(len(pos), k + 1)
            redo = (vals[:, k] == vals[:, k - 1]) | ~np.isfinite(vals).all(axis=1)
            ok = ~redo
            vals, idx = vals[ok, :k], idx[ok, :k]
            order = np.lexsort((idx, -vals), axis=1)  # by score desc, then index asc
            out[pos[ok]] = np.take_along_axis(idx, order, axis=1)
            dense.append(pos[redo])
            bar.update(int(ok.sum()))
    return np.sort(np.concatenate(dense))
