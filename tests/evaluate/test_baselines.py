"""One contract suite for every baseline, on block-structured data whose right answer is known."""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import pytest
import scipy.sparse as sp

from geotower.errors import ConfigError, NotFittedError
from geotower.evaluate import baselines as B
from geotower.evaluate.metrics import evaluate_scorer, rank_topk

GROUPS, SIZE = 3, 8  # 3 taste groups, 8 users and 8 items each


def blocks() -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """User u likes every item of its own group except item u (held out): the right top-1 for u is item u."""
    n = GROUPS * SIZE
    group = np.arange(n) // SIZE
    dense = (group[:, None] == group[None, :]).astype(np.float32)
    held = sp.identity(n, dtype=np.float32, format="csr")
    return sp.csr_matrix(dense - held.toarray()), held


PERSONAL = {"itemknn": {"n_neighbors": None}, "als": {"factors": 8, "regularization": 0.01, "alpha": 10.0},
            "bpr": {"factors": 8, "learning_rate": 0.05, "iterations": 200}, "ease": {"l2": 1.0},
            "rp3beta": {"alpha": 1.0, "beta": 0.3, "n_neighbors": 50}}
POPULARITY_LIKE = {"popular", "recent"}


@pytest.fixture(params=["popular", "itemknn", "als", "bpr", "ease", "rp3beta", "recent"])
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def fitted(name: str) -> B.Baseline:
    train, _ = blocks()
    return B.make(name, PERSONAL.get(name, {}), seed=0, threads=1).fit(train)


def test_score_shape_dtype_and_determinism(name: str) -> None:
    users = np.array([0, 5, 23])
    s1, s2 = fitted(name).score(users), fitted(name).score(users)
    assert s1.shape == (3, GROUPS * SIZE) and s1.dtype == np.float32
    np.testing.assert_array_equal(s1, s2)


def test_score_before_fit_raises(name: str) -> None:
    with pytest.raises(NotFittedError, match="not fitted"):
        B.make(name, PERSONAL.get(name, {})).score(np.array([0]))


def test_known_answer_on_blocks(name: str) -> None:
    train, held = blocks()
    model = fitted(name)
    m = evaluate_scorer(model.score, np.arange(train.shape[0]), held, train, k=1)
    if name in POPULARITY_LIKE:
        # all items have 7 fans: ties go to the lowest unseen index -> item u for group 0 only (1 group of 3)
        assert m["hitrate"] == pytest.approx(1 / 3)
    else:
        assert m["hitrate"] == 1.0  # only the own-group held-out item co-occurs with u's items


def test_most_popular_counts_distinct_users() -> None:
    train = sp.csr_matrix(np.array([[5.0, 1.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 2.0]]))
    model = B.MostPopular().fit(train)
    np.testing.assert_array_equal(model.popularity_, [3, 1, 1])
    np.testing.assert_array_equal(rank_topk(model.score(np.array([0])), None, 3), [[0, 1, 2]])


def test_itemknn_known_similarities() -> None:
    # items 0 and 1 share 1 of their 2 users each: cos = 1 / (sqrt2 * sqrt2) = 0.5; item 2 only with item 1
    train = sp.csr_matrix(np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]))
    sim = B.ItemKNN(n_neighbors=None).fit(train).sim_.toarray()
    c = 1 / np.sqrt(2)
    np.testing.assert_allclose(sim, [[0, 0.5, 0], [0.5, 0, c], [0, c, 0]], atol=1e-6)
    pruned = B.ItemKNN(n_neighbors=1).fit(train).sim_.toarray()  # target 1 keeps only source 2 (0.707 > 0.5)
    np.testing.assert_allclose(pruned[:, 1], [0, 0, c], atol=1e-6)


def test_make_rejects_unknown_and_bad_params() -> None:
    with pytest.raises(ConfigError, match="unknown baseline"):
        B.make("nope", {})
    with pytest.raises(ConfigError, match="n_neighbors"):
        B.ItemKNN(n_neighbors=0).fit(blocks()[0])


class _Toy:
    """Oracle (good=True) or anti-oracle scorer; remembers what it was fitted on."""

    fits: list[int] = []

    def __init__(self, good: bool) -> None:
        self.good = good

    def fit(self, train: sp.csr_matrix, items: Any = None) -> Self:
        _Toy.fits.append(train.nnz)
        return self

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        eye = np.eye(GROUPS * SIZE, dtype=np.float32)[user_idx]
        return eye if self.good else -eye


def test_tune_picks_best_validation_params_and_refits_on_full_train(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(B.FACTORIES, "toy", _Toy)
    train, held = blocks()
    val_train = sp.csr_matrix(train.multiply(sp.csr_matrix(np.tri(GROUPS * SIZE, dtype=np.float32))))
    _Toy.fits = []
    tuned = B.tune_and_fit("toy", train, val_train, held, k=1, grid_spec={"good": (False, True)})
    assert tuned.params == {"good": True} and tuned.val_ndcg == 1.0
    assert _Toy.fits == [val_train.nnz, val_train.nnz, train.nnz]
    assert B.grid({"a": (1, 2), "b": (3,)}) == [{"a": 1, "b": 3}, {"a": 2, "b": 3}]


def test_time_decay_popularity_prefers_recent_items() -> None:
    # item 0: 3 positives a year ago; item 1: 1 positive today -> recent list ranks 1 first, all-time ranks 0 first
    train = sp.csr_matrix(np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 1.0]]))
    day = 86_400.0
    events = (np.array([0, 0, 0, 1]), np.array([0.0, 0.0, 0.0, 365 * day]))
    recent = B.TimeDecayPopularity(half_life_days=30.0).fit(train, events=events)
    assert recent.popularity_[1] > recent.popularity_[0]
    slow = B.TimeDecayPopularity(half_life_days=1e6).fit(train, events=events)
    assert slow.popularity_[0] > slow.popularity_[1]
    np.testing.assert_allclose(B.TimeDecayPopularity().fit(train).popularity_, [3, 1])  # no events: all-time
    with pytest.raises(ConfigError, match="half_life_days"):
        B.TimeDecayPopularity(half_life_days=0).fit(train)


def test_ease_matches_closed_form_and_refuses_huge_catalogues() -> None:
    train = sp.csr_matrix(np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 1.0]]))
    x = train.toarray()
    p = np.linalg.inv(x.T @ x + 2.0 * np.eye(3))
    expect = np.eye(3) - p / np.diag(p)
    np.fill_diagonal(expect, 0.0)
    np.testing.assert_allclose(B.EASE(l2=2.0).fit(train).weights_, expect, atol=1e-5)
    with pytest.raises(ConfigError, match="max_items"):
        B.EASE(max_items=2).fit(train)


def test_rp3beta_known_transitions() -> None:
    # users: {0,1}, {0}, {1,2}; P(0 -> u -> 1) = 1/2 (u0 from item 0) * 1/2 (u0 to item 1) = 0.25
    train = sp.csr_matrix(np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]))
    w = B.RP3beta(alpha=1.0, beta=0.0, n_neighbors=3).fit(train).sim_.toarray()
    np.testing.assert_allclose(w[0], [0.0, 0.25, 0.0], atol=1e-6)
    np.testing.assert_allclose(w[2], [0.0, 0.5, 0.0], atol=1e-6)  # item 2's only user u2 moves to 1 or 2 (1/2 each)
    discounted = B.RP3beta(alpha=1.0, beta=1.0, n_neighbors=3).fit(train).sim_.toarray()
    np.testing.assert_allclose(discounted[0, 1], 0.25 / 2, atol=1e-6)  # item 1 has 2 users
