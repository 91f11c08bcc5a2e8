"""Batched evaluation vs a per-user Python loop on the same random embeddings: users/s and the ratios.

Every path scores all items, masks train-seen items, takes the top K and computes Recall/NDCG. Two batched paths are
timed over all users: ``evaluate_scorer`` ("dense": numpy GEMM score blocks + ``torch.topk``) and
``evaluate_embeddings`` ("faiss": FAISS exact inner-product search for K + seen + 1 neighbours, seen items dropped).
torch and faiss are imported, and each path is run once on a few users, before any timing, so import and first-call
costs are not measured. Two loop references are timed on a subset: "argsort" is the obvious first version (one
matrix-vector product and a full sort per user), "argpartition" a tuned loop (partial selection per user); neither
runs a tower forward pass, as a two-tower evaluation scoring stored embeddings would not. The ratio of each batched
path to each loop is printed (the issue's target is >= 50x), and whether all paths give the same metrics.

Run: ``python benchmarks/bench_metrics.py [--users 20000] [--items 50000] [--dim 64] [--loop-users 500]``
"""

from __future__ import annotations

import argparse
import math
import os
import time

import faiss  # imported before timing: the evaluators import it (and torch) lazily
import numpy as np
import scipy.sparse as sp
import torch

from geotower.evaluate.metrics import METRIC_NAMES, evaluate_embeddings, evaluate_scorer


def make_data(
    n_users: int, n_items: int, d: int, seed: int
) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix, sp.csr_matrix]:
    """Random towers, ~20 seen and ~5 relevant items per user."""
    rng = np.random.default_rng(seed)
    users = rng.standard_normal((n_users, d), dtype=np.float32)
    items = rng.standard_normal((n_items, d), dtype=np.float32)

    def random_csr(per_user: int) -> sp.csr_matrix:
        cols = rng.integers(0, n_items, size=n_users * per_user)
        rows = np.repeat(np.arange(n_users), per_user)
        m = sp.csr_matrix((np.ones(len(cols), dtype=np.float32), (rows, cols)), shape=(n_users, n_items))
        m.data[:] = 1.0
        return m

    return users, items, random_csr(20), random_csr(5)


def per_user_loop(
    users: np.ndarray,
    items: np.ndarray,
    seen: sp.csr_matrix,
    relevant: sp.csr_matrix,
    user_idx: np.ndarray,
    k: int,
    partial: bool,
) -> dict[str, float]:
    """Reference: one user at a time (full argsort, or argpartition when ``partial``)."""
    recalls, ndcgs = [], []
    for u in user_idx:
        rel = set(relevant[u].indices) - set(seen[u].indices)
        if not rel:
            continue
        s = items @ users[u]
        s[seen[u].indices] = -np.inf
        if partial:
            top = np.argpartition(-s, k - 1)[:k]
            top = top[np.argsort(-s[top], kind="stable")]
        else:
            top = np.argsort(-s, kind="stable")[:k]
        hits = [int(t in rel) for t in top]
        recalls.append(sum(hits) / len(rel))
        idcg = sum(1 / math.log2(r + 2) for r in range(min(len(rel), k)))
        ndcgs.append(sum(h / math.log2(r + 2) for r, h in enumerate(hits)) / idcg)
    return {"recall": float(np.mean(recalls)), "ndcg": float(np.mean(ndcgs)), "users": len(recalls)}


def max_metric_diff(a: dict[str, float], b: dict[str, float]) -> float:
    """Largest absolute difference over the metrics both dicts hold (inf when the user counts differ)."""
    if a["users"] != b["users"]:
        return math.inf
    return max(abs(a[name] - b[name]) for name in METRIC_NAMES if name in a and name in b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--loop-users", type=int, default=500, help="users timed in the loop (it is slow)")
    parser.add_argument("--batch-size", type=int, default=1024)
    args = parser.parse_args()
    users, items, seen, relevant = make_data(args.users, args.items, args.dim, seed=0)
    all_users = np.arange(args.users)

    def dense(idx: np.ndarray) -> dict[str, float]:
        return evaluate_scorer(lambda b: users[b] @ items.T, idx, relevant, seen, args.k, batch_size=args.batch_size)

    def fast(idx: np.ndarray) -> dict[str, float]:
        return evaluate_embeddings(users, items, idx, relevant, seen, args.k, batch_size=args.batch_size)

    warm = all_users[: min(256, args.users)]  # first calls: thread pools, BLAS/FAISS kernels
    dense(warm)
    fast(warm)
    load = os.getloadavg()[0]
    print(
        f"data: {args.users} users x {args.items} items, d={args.dim}, K={args.k}, batch {args.batch_size}; "
        f"threads: torch {torch.get_num_threads()}, faiss {faiss.omp_get_max_threads()}, "
        f"{os.cpu_count()} CPUs, load average (1 min) {load:.2f}"
    )

    batched: dict[str, tuple[dict[str, float], float]] = {}
    for name, fn in (("dense evaluate_scorer", dense), ("faiss evaluate_embeddings", fast)):
        t0 = time.perf_counter()
        m = fn(all_users)
        batched[name] = (m, m["users"] / (time.perf_counter() - t0))
        print(
            f"batched {name}: {m['users']} users in {m['users'] / batched[name][1]:.2f}s = "
            f"{batched[name][1]:,.0f} users/s (recall {m['recall']:.5f}, ndcg {m['ndcg']:.5f})"
        )
    (m_dense, _), (m_fast, _) = batched.values()
    diff = max_metric_diff(m_dense, m_fast)
    print(f"faiss vs dense over all users: same metrics: {diff < 1e-9} (max |diff| {diff:.1e})")

    sub = all_users[: min(args.loop_users, args.users)]
    check = {"dense": dense(sub), "faiss": fast(sub)}
    loops: dict[str, float] = {}
    for name, partial in (("argsort", False), ("argpartition", True)):
        t0 = time.perf_counter()
        loop = per_user_loop(users, items, seen, relevant, sub, k=args.k, partial=partial)
        loops[name] = loop["users"] / (time.perf_counter() - t0)
        agree = all(max_metric_diff(c, loop) < 1e-9 for c in check.values())
        print(
            f"per-user loop ({name}): {loop['users']} users in {loop['users'] / loops[name]:.2f}s = "
            f"{loops[name]:,.0f} users/s; same metrics as both batched paths: {agree}"
        )

    print("ratio batched users/s / loop users/s (target >= 50x):")
    print(f"  {'':28s}" + "".join(f"{'vs ' + name:>18s}" for name in loops))
    for name, (_, ups) in batched.items():
        print(f"  {name:28s}" + "".join(f"{ups / lps:17.1f}x" for lps in loops.values()))


if __name__ == "__main__":
    main()
