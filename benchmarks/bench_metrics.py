"""Batched evaluation vs a per-user Python loop on the same random embeddings: users/s and the ratio.

Both paths score, mask train-seen items, take the top K and compute Recall/NDCG. Two loop references are timed:
"argsort" is the obvious first version (one matrix-vector product and a full sort per user), "argpartition" is a
tuned loop (partial selection per user). The issue's target is a ratio >= 50x.

Run: ``python benchmarks/bench_metrics.py [--users 20000] [--items 50000] [--loop-users 500]``
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import scipy.sparse as sp

from geotower.evaluate.metrics import evaluate_scorer


def make_data(n_users: int, n_items: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix,
                                                                        sp.csr_matrix]:
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


def per_user_loop(users: np.ndarray, items: np.ndarray, seen: sp.csr_matrix, relevant: sp.csr_matrix,
                  user_idx: np.ndarray, k: int, partial: bool) -> dict[str, float]:
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
    items_t = np.ascontiguousarray(items.T)

    t0 = time.perf_counter()
    batched = evaluate_scorer(lambda b: users[b] @ items_t, np.arange(args.users), relevant, seen, args.k,
                              batch_size=args.batch_size)
    t_batched = time.perf_counter() - t0

    sub = np.arange(min(args.loop_users, args.users))
    check = evaluate_scorer(lambda b: users[b] @ items_t, sub, relevant, seen, args.k)
    ups_batched = batched["users"] / t_batched
    print(f"data: {args.users} users x {args.items} items, d={args.dim}, K={args.k}, batch {args.batch_size}")
    print(f"batched evaluate_scorer: {batched['users']} users in {t_batched:.2f}s = {ups_batched:,.0f} users/s")
    for name, partial in (("argsort", False), ("argpartition", True)):
        t0 = time.perf_counter()
        loop = per_user_loop(users, items, seen, relevant, sub, args.k, partial)
        t_loop = time.perf_counter() - t0
        agree = abs(check["recall"] - loop["recall"]) < 1e-9 and abs(check["ndcg"] - loop["ndcg"]) < 1e-9
        ups_loop = loop["users"] / t_loop
        print(f"per-user loop ({name}): {loop['users']} users in {t_loop:.2f}s = {ups_loop:,.0f} users/s; "
              f"ratio {ups_batched / ups_loop:.1f}x (target >= 50x); same metrics: {agree}")

if __name__ == "__main__":
    main()
