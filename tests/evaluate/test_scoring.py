"""Known-answer tests for geotower.evaluate.scoring: many users in batches, and the FAISS path for embeddings
matching the dense one (expected values worked out by hand in comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from sparse_rows import csr

from geotower.errors import ConfigError, DataError, GeotowerWarning
from geotower.evaluate import scoring
from geotower.evaluate.formulas import METRIC_NAMES, ground_truth
from geotower.evaluate.scoring import evaluate_embeddings, evaluate_scorer


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
    m = evaluate_scorer(lambda b: (u[b] @ v.T).astype(np.float32), np.arange(n_users), relevant, seen, k, batch_size=16)
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


def run_both(
    monkeypatch: pytest.MonkeyPatch,
    u: np.ndarray,
    v: np.ndarray,
    users: np.ndarray,
    relevant: sp.csr_matrix,
    seen: sp.csr_matrix | None,
    k: int,
    batch_size: int = 16,
) -> tuple[dict, dict, np.ndarray, np.ndarray, int]:
    """Both evaluators on the same towers: (dense metrics, FAISS metrics, dense top-K, FAISS top-K, rows FAISS left
    to the dense path). The top-K lists are caught on their way into topk_metrics."""
    lists: list[np.ndarray] = []
    dense_rows = [0]
    real_metrics, real_rank = scoring.topk_metrics, scoring.rank_excluding

    def catch(topk: np.ndarray, truth: sp.csr_matrix, k: int) -> dict[str, float]:
        lists.append(topk.copy())
        return real_metrics(topk, truth, k)

    def count(scores: np.ndarray, exclude: sp.csr_matrix | None, k: int) -> np.ndarray:
        dense_rows[0] += len(scores)
        return real_rank(scores, exclude, k)

    monkeypatch.setattr(scoring, "topk_metrics", catch)
    m_dense = evaluate_scorer(lambda b: u[b] @ v.T, users, relevant, seen, k, batch_size=batch_size)
    monkeypatch.setattr(scoring, "rank_excluding", count)
    monkeypatch.setattr(scoring, "_FAISS_QUERY_BLOCK", 1)  # FAISS searches batch_size users: several per bucket
    m_faiss = evaluate_embeddings(u, v, users, relevant, seen, k, batch_size=batch_size)
    assert len(lists) == 2
    return m_dense, m_faiss, lists[0], lists[1], dense_rows[0]


def assert_same_metrics(a: dict, b: dict) -> None:
    assert a.keys() == b.keys() and a["users"] == b["users"]
    for name in METRIC_NAMES:
        assert a[name] == pytest.approx(b[name], abs=1e-9), name


def random_csr(rng: np.random.Generator, counts: np.ndarray, n_items: int) -> sp.csr_matrix:
    """Row i holds counts[i] distinct random items (unsorted indices)."""
    return csr([list(rng.choice(n_items, size=c, replace=False)) for c in counts], n_items)


@pytest.mark.parametrize("with_seen", [True, False])
def test_evaluate_embeddings_matches_evaluate_scorer(monkeypatch: pytest.MonkeyPatch, with_seen: bool) -> None:
    rng = np.random.default_rng(7)
    n_users, n_items, k = 240, 300, 10
    u = rng.standard_normal((n_users, 8), dtype=np.float32)
    v = rng.standard_normal((n_items, 8), dtype=np.float32)
    # seen: 0-60 items (K + seen + 1 spans FAISS buckets 16..128); users 0-19 see 200 (> cap 150: dense path);
    # relevant: drawn from the full catalogue, so some relevant items are seen (not ground truth) and
    # users 20-39 have none at all
    n_seen = rng.integers(0, 61, size=n_users)
    n_seen[:20] = 200
    n_rel = rng.integers(1, 8, size=n_users)
    n_rel[20:40] = 0
    relevant = random_csr(rng, n_rel, n_items)
    seen = random_csr(rng, n_seen, n_items) if with_seen else None
    if with_seen:  # a duplicated entry and an explicit zero are masked by the dense path: FAISS must drop them too
        row = seen[50].indices
        seen = sp.vstack([seen[:50], csr([[*row, row[0]]], n_items), seen[51:]], format="csr")
        seen.data[seen.indptr[60]] = 0.0
    users = np.r_[np.arange(n_users), [45, 45, 3]]  # repeated users are evaluated once per occurrence
    m_dense, m_faiss, top_dense, top_faiss, dense_rows = run_both(monkeypatch, u, v, users, relevant, seen, k)
    np.testing.assert_array_equal(top_faiss, top_dense)
    assert_same_metrics(m_dense, m_faiss)
    evaluated = np.diff(ground_truth(relevant, seen).indptr)[users] > 0
    assert m_faiss["users"] == evaluated.sum() <= len(users) - 20  # users 20-39 have no ground truth
    assert m_faiss["recall"] > 0.02  # enough hits that a wrong list would move the metrics
    # random float scores never tie: exactly the heavy users with ground truth (0-19, repeated 3) go dense
    heavy = evaluated[np.r_[:20, -1]].sum()
    assert dense_rows == (heavy if with_seen else 0) and heavy > 10


def test_evaluate_embeddings_exact_ties_go_to_lower_index(monkeypatch: pytest.MonkeyPatch) -> None:
    # integer-valued towers and duplicated items: many exact ties, inside the lists and across the K-th place
    rng = np.random.default_rng(3)
    n_users, n_items, k = 150, 120, 5
    u = rng.integers(-3, 4, size=(n_users, 3)).astype(np.float32)
    v = rng.integers(-3, 4, size=(n_items, 3)).astype(np.float32)
    v[60:] = v[:60][rng.permutation(60)]
    seen = random_csr(rng, rng.integers(0, 20, size=n_users), n_items)
    relevant = random_csr(rng, rng.integers(1, 10, size=n_users), n_items)
    users = np.arange(n_users)
    m_dense, m_faiss, top_dense, top_faiss, dense_rows = run_both(monkeypatch, u, v, users, relevant, seen, k)
    np.testing.assert_array_equal(top_faiss, top_dense)
    assert_same_metrics(m_dense, m_faiss)
    # the reference: a stable full sort of the exact integer scores, seen items last
    scores = u @ v.T
    scores[seen.nonzero()] = -np.inf
    evaluated = np.diff(ground_truth(relevant, seen).indptr) > 0
    np.testing.assert_array_equal(top_faiss, np.argsort(-scores, axis=1, kind="stable")[evaluated, :k])
    # FAISS breaks boundary ties arbitrarily: exactly the users tied at the K-th place must be redone densely
    ranked = -np.sort(-scores[evaluated], axis=1)
    tied = int((ranked[:, k - 1] == ranked[:, k]).sum())
    assert 0 < tied < evaluated.sum() and dense_rows == tied


def test_evaluate_embeddings_masks_seen_items_that_rank_best(monkeypatch: pytest.MonkeyPatch) -> None:
    # every user has seen exactly its n best items, n = 0..40, so K + n hits powers of two (16, 32): FAISS must ask
    # for K + n + 1 neighbours to keep K + 1 unseen ones. Users 0-4 store their seen items with explicit zeros,
    # which the dense path masks like any stored entry.
    rng = np.random.default_rng(13)
    n_users, n_items, k = 41, 100, 5
    u = rng.standard_normal((n_users, 6), dtype=np.float32)
    v = rng.standard_normal((n_items, 6), dtype=np.float32)
    order = np.argsort(-(u @ v.T), axis=1, kind="stable")
    seen = csr([list(order[i, :i]) for i in range(n_users)], n_items)
    seen.data[: seen.indptr[5]] = 0.0
    relevant = csr([list(order[i, i : i + 3]) for i in range(n_users)], n_items)  # the 3 best unseen
    m_dense, m_faiss, top_dense, top_faiss, dense_rows = run_both(
        monkeypatch, u, v, np.arange(n_users), relevant, seen, k
    )
    np.testing.assert_array_equal(top_faiss, top_dense)
    np.testing.assert_array_equal(top_faiss, np.stack([order[i, i : i + k] for i in range(n_users)]))
    assert m_faiss["users"] == n_users and m_faiss["hitrate"] == 1.0 and m_faiss["recall"] == 1.0
    assert dense_rows == 0  # K + 40 + 1 = 46 <= cap 50: all through FAISS


@pytest.mark.parametrize("where", ["nan_user", "nan_item", "inf_item", "overflow"])
def test_evaluate_embeddings_non_finite_matches_dense(monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    rng = np.random.default_rng(5)
    n_users, n_items, k = 40, 50, 4
    u = rng.standard_normal((n_users, 4), dtype=np.float32)
    v = rng.standard_normal((n_items, 4), dtype=np.float32)
    if where == "nan_user":
        u[3, 1] = np.nan  # every score of user 3 is NaN (= -inf): its list is the lowest item indices
    elif where == "nan_item":
        v[:5, 0] = np.nan  # items 0-4 rank last for everyone
    elif where == "inf_item":
        v[7] = [np.inf, 0, 0, 0]  # +inf for users with u[:, 0] > 0, -inf below, NaN at 0
    else:
        v[9] *= 1e38  # finite vectors whose products overflow float32
    seen = random_csr(rng, rng.integers(0, 10, size=n_users), n_items)
    relevant = random_csr(rng, rng.integers(1, 10, size=n_users), n_items)
    with np.errstate(all="ignore"):
        m_dense, m_faiss, top_dense, top_faiss, dense_rows = run_both(
            monkeypatch, u, v, np.arange(n_users), relevant, seen, k
        )
    np.testing.assert_array_equal(top_faiss, top_dense)
    assert_same_metrics(m_dense, m_faiss)
    assert dense_rows == m_faiss["users"]  # nothing went through FAISS


def test_evaluate_embeddings_k_is_whole_catalogue(monkeypatch: pytest.MonkeyPatch) -> None:
    # K = n_items: every list holds the whole catalogue, seen items last (masked to -inf, ordered by index)
    rng = np.random.default_rng(11)
    u, v = rng.standard_normal((6, 3), dtype=np.float32), rng.standard_normal((12, 3), dtype=np.float32)
    seen = csr([[0, 5], [], [11], [3, 4, 6], [2], []], 12)
    relevant = csr([[1], [2, 3], [0], [3, 7], [2], [9]], 12)
    m_dense, m_faiss, top_dense, top_faiss, _ = run_both(monkeypatch, u, v, np.arange(6), relevant, seen, 12)
    np.testing.assert_array_equal(top_faiss, top_dense)
    assert_same_metrics(m_dense, m_faiss)
    assert m_faiss["users"] == 5 and m_faiss["recall"] == 1.0  # user 4's only relevant item is seen
    np.testing.assert_array_equal(top_faiss[0, -2:], [0, 5])


def test_evaluate_embeddings_bad_inputs() -> None:
    u, v, rel = np.ones((2, 3), np.float32), np.ones((4, 3), np.float32), csr([[0], [1]], 4)
    for k in (0, -1, 5, True, 2.0):
        with pytest.raises(ConfigError) as dense_err:
            evaluate_scorer(lambda b: u[b] @ v.T, np.arange(2), rel, None, k)
        with pytest.raises(ConfigError) as faiss_err:
            evaluate_embeddings(u, v, np.arange(2), rel, None, k)
        assert str(faiss_err.value) == str(dense_err.value)
    with pytest.raises(ConfigError, match="batch_size"):
        evaluate_embeddings(u, v, np.arange(2), rel, None, 2, batch_size=0)
    with pytest.raises(DataError, match="seen shape"):
        evaluate_embeddings(u, v, np.arange(2), rel, csr([[0]], 4), 2)
    with pytest.raises(DataError, match="expected 4"):
        evaluate_embeddings(u, v[:3], np.arange(2), rel, None, 2)
    with pytest.raises(DataError, match="same d"):
        evaluate_embeddings(u, v[:, :2], np.arange(2), rel, None, 2)
    with pytest.raises(DataError, match="user indices"):
        evaluate_embeddings(u, v, np.array([0, 2]), rel, None, 2)
    with pytest.warns(GeotowerWarning, match="no user"):
        m = evaluate_embeddings(u, v, np.arange(2), rel, rel, 2)  # every relevant item is seen
    assert m == {**{name: 0.0 for name in METRIC_NAMES}, "users": 0}


def test_evaluate_embeddings_leaves_inputs_untouched() -> None:
    rng = np.random.default_rng(2)
    u, v = rng.standard_normal((30, 4), dtype=np.float32), rng.standard_normal((40, 4), dtype=np.float32)
    seen = csr([list(rng.permutation(40)[:5]) for _ in range(30)], 40)  # unsorted indices
    relevant = csr([list(rng.permutation(40)[:3]) for _ in range(30)], 40)
    before = (u.copy(), v.copy(), seen.indices.copy(), seen.indptr.copy(), seen.data.copy())
    evaluate_embeddings(u, v, np.arange(30), relevant, seen, 3)
    for a, b in zip(before, (u, v, seen.indices, seen.indptr, seen.data), strict=True):
        np.testing.assert_array_equal(a, b)
