"""Known-answer tests for geotower.evaluate.metrics (expected values worked out by hand in comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from geotower.errors import ConfigError, DataError, GeotowerWarning
from geotower.evaluate.metrics import evaluate_scorer, ground_truth, rank_topk, topk_metrics


def csr(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    indptr = np.cumsum([0] + [len(r) for r in rows])
    indices = np.array([i for r in rows for i in r], dtype=np.int64)
    return sp.csr_matrix((np.ones(len(indices), dtype=np.float32), indices, indptr), shape=(len(rows), n_items))


# --- rank_topk ------------------------------------------------------------------------------------
def test_rank_topk_orders_best_first() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.7], [4.0, 3.0, 2.0, 1.0]], dtype=np.float32)
    np.testing.assert_array_equal(rank_topk(scores, None, 3), [[1, 3, 2], [0, 1, 2]])


def test_rank_topk_ties_go_to_lower_index() -> None:
    # row 0: items 0, 2, 3 tie at 1.0 for two places -> 0 and 2; row 1: all equal -> 0, 1
    scores = np.array([[1.0, 0.0, 1.0, 1.0, 0.5], [2.0, 2.0, 2.0, 2.0, 2.0]], dtype=np.float32)
    np.testing.assert_array_equal(rank_topk(scores, None, 2), [[0, 2], [0, 1]])
    # a tie inside the list (not at the boundary) is ordered by index too: 3 > (1 == 4) > ...
    scores = np.array([[0.0, 5.0, 0.0, 9.0, 5.0]], dtype=np.float32)
    np.testing.assert_array_equal(rank_topk(scores, None, 3), [[3, 1, 4]])


def test_rank_topk_masks_excluded_and_nan_without_touching_input() -> None:
    scores = np.array([[0.9, 0.8, np.nan, 0.1], [0.9, 0.8, 0.7, 0.1]], dtype=np.float32)
    before = scores.copy()
    exclude = csr([[0], [1, 2]], 4)
    np.testing.assert_array_equal(rank_topk(scores, exclude, 2), [[1, 3], [0, 3]])
    np.testing.assert_array_equal(scores, before)


@pytest.mark.parametrize("k", [0, -1, 5])
def test_rank_topk_rejects_bad_k(k: int) -> None:
    with pytest.raises(ConfigError, match="K"):
        rank_topk(np.zeros((1, 4), dtype=np.float32), None, k)


def test_rank_topk_matches_full_stable_sort() -> None:
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, size=(50, 40)).astype(np.float32)  # many ties
    expected = np.argsort(-scores, axis=1, kind="stable")[:, :7]
    np.testing.assert_array_equal(rank_topk(scores, None, 7), expected)


# --- topk_metrics ---------------------------------------------------------------------------------
def test_topk_metrics_known_answer() -> None:
    relevant = csr([[2, 5], [0, 1, 2, 3, 4], [7]], 10)
    topk = np.array([[5, 1, 2], [9, 0, 8], [1, 2, 3]])
    m = topk_metrics(topk, relevant, 3)
    d = [1.0, 1 / math.log2(3), 0.5]  # discounts at ranks 1..3
    # row 0: hits at ranks 1, 3 of |rel|=2; row 1: hit at rank 2 of |rel|=5; row 2: no hit
    ndcg0 = (d[0] + d[2]) / (d[0] + d[1])
    ndcg1 = d[1] / (d[0] + d[1] + d[2])
    assert m["recall"] == pytest.approx((1.0 + 1 / 5 + 0) / 3)
    assert m["ndcg"] == pytest.approx((ndcg0 + ndcg1) / 3)
    assert m["ndcg"] == pytest.approx((0.919721 + 0.296082) / 3, abs=1e-6)
    assert m["hitrate"] == pytest.approx(2 / 3)
    assert m["precision"] == pytest.approx((2 / 3 + 1 / 3) / 3)
    assert m["recall_trunc"] == pytest.approx((2 / 2 + 1 / 3) / 3)


def test_topk_metrics_uses_only_first_k_columns_and_perfect_is_one() -> None:
    relevant = csr([[0, 1]], 5)
    m = topk_metrics(np.array([[1, 0, 4]]), relevant, 2)
    assert m == {"recall": 1.0, "ndcg": 1.0, "hitrate": 1.0, "precision": 1.0, "recall_trunc": 1.0}
    m = topk_metrics(np.array([[4, 3, 0]]), relevant, 2)  # the hit at rank 3 is past K
    assert m["hitrate"] == 0.0


def test_topk_metrics_rejects_rows_without_relevant() -> None:
    with pytest.raises(DataError, match="no relevant"):
        topk_metrics(np.array([[0, 1]]), csr([[]], 3), 2)


# --- evaluate_scorer ------------------------------------------------------------------------------
def test_ground_truth_drops_seen() -> None:
    gt = ground_truth(csr([[0, 1], [2]], 3), csr([[1], [2]], 3))
    assert gt[0].indices.tolist() == [0] and gt[1].nnz == 0


def test_evaluate_scorer_known_answer() -> None:
    # 3 users x 4 items; every user scores items as 3 > 2 > 1 > 0 by index (item 3 best).
    # user 0: seen {3}, relevant {2} -> ranking after mask 2, 1 -> hit at rank 1
    # user 1: seen {}, relevant {0} -> ranking 3, 2 -> miss
    # user 2: relevant {3} but seen {3} -> no ground truth, skipped
    relevant = csr([[2], [0], [3]], 4)
    seen = csr([[3], [], [3]], 4)
    calls = []

    def score_fn(users: np.ndarray) -> np.ndarray:
        calls.append(users.tolist())
        return np.tile(np.arange(4, dtype=np.float32), (len(users), 1))

    m = evaluate_scorer(score_fn, np.arange(3), relevant, seen, k=2, batch_size=1)
    assert m["users"] == 2
    assert m["recall"] == 0.5 and m["hitrate"] == 0.5 and m["precision"] == 0.25 and m["ndcg"] == 0.5
    assert calls == [[0], [1]]


def test_evaluate_scorer_matches_per_user_reference() -> None:
    rng = np.random.default_rng(1)
    n_users, n_items, k = 60, 30, 5
    u, v = rng.normal(size=(n_users, 4)), rng.normal(size=(n_items, 4))
    relevant = sp.random(n_users, n_items, density=0.1, random_state=2, format="csr")
    seen = sp.random(n_users, n_items, density=0.2, random_state=3, format="csr")
    m = evaluate_scorer(lambda b: (u[b] @ v.T).astype(np.float32), np.arange(n_users), relevant, seen, k,
                        batch_size=16)
    recalls, ndcgs = [], []
    for i in range(n_users):  # the slow obvious way
        s = (u[i] @ v.T).astype(np.float32)
        s[seen[i].indices] = -np.inf
        rel = set(relevant[i].indices) - set(seen[i].indices)
        if not rel:
            continue
        top = np.argsort(-s, kind="stable")[:k]
        hits = [int(t in rel) for t in top]
        recalls.append(sum(hits) / len(rel))
        idcg = sum(1 / math.log2(r + 2) for r in range(min(len(rel), k)))
        ndcgs.append(sum(h / math.log2(r + 2) for r, h in enumerate(hits)) / idcg)
    assert m["users"] == len(recalls)
    assert m["recall"] == pytest.approx(np.mean(recalls))
    assert m["ndcg"] == pytest.approx(np.mean(ndcgs))


def test_evaluate_scorer_does_not_corrupt_score_cache() -> None:
    cache = np.arange(8, dtype=np.float32).reshape(2, 4)
    evaluate_scorer(lambda b: cache[b[0] : b[-1] + 1], np.arange(2), csr([[0], [1]], 4), csr([[3], [3]], 4), 2)
    np.testing.assert_array_equal(cache, np.arange(8, dtype=np.float32).reshape(2, 4))


def test_evaluate_scorer_bad_inputs() -> None:
    rel = csr([[0]], 3)
    with pytest.raises(ConfigError, match="larger than the catalogue"):
        evaluate_scorer(lambda b: np.zeros((len(b), 3)), np.arange(1), rel, None, 4)
    with pytest.raises(DataError, match="shape"):
        evaluate_scorer(lambda b: np.zeros((len(b), 2)), np.arange(1), rel, None, 2)
    with pytest.warns(GeotowerWarning, match="no user"):
        m = evaluate_scorer(lambda b: np.zeros((len(b), 3)), np.arange(1), csr([[]], 3), None, 2)
    assert m["users"] == 0


def test_block_batch_size_bounds_memory() -> None:
    from geotower.evaluate.metrics import block_batch_size

    # 128 MiB / (4 bytes x 50,000 items) = 671 users; small catalogues cap at 1024; huge ones still get 1 user
    assert (block_batch_size(50_000), block_batch_size(10), block_batch_size(10**9)) == (671, 1024, 1)


def test_rank_topk_accepts_views_and_other_dtypes() -> None:
    base = np.array([[0.0, 3.0, 1.0, 2.0]])
    expected = [[1, 3]]
    np.testing.assert_array_equal(rank_topk(base[:, ::-1], None, 2), [[2, 0]])  # negative-stride view: 2, 1, 3, 0
    np.testing.assert_array_equal(rank_topk(np.asfortranarray(base), None, 2), expected)
    np.testing.assert_array_equal(rank_topk(base.astype(np.int64), None, 2), expected)
    np.testing.assert_array_equal(rank_topk(np.broadcast_to(base, (3, 4)), csr([[1], [], [3]], 4), 2),
                                  [[3, 2], [1, 3], [1, 2]])
