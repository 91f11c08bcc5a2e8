"""Trend features: decayed counts (known answer), no look-ahead, the memory bound, and the towers' prior column."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from geotower.model.history import history_bags
from geotower.model.spec import TowerSpec
from geotower.model.towers import TwoTower
from geotower.model.trend import MAX_BUCKETS, MAX_TABLE_CELLS, n_buckets_for, trend_features

DAY = 86_400.0


def test_now_is_the_decayed_count_known_answer() -> None:
    # item 0: one interaction at day 0; item 1: two at day 10 (the last timestamp); half-life 10 days.
    # Counts are aged from their bucket's midpoint, so allow half a bucket of error (10 days / 256 buckets).
    t = trend_features(np.array([0, 1, 1]), np.array([0.0, 10 * DAY, 10 * DAY]), 3, (10.0,))
    width_days = 10.0 / t.table.shape[0]
    now = np.expm1(t.now[:, 0])
    assert now[0] == pytest.approx(0.5, rel=math.log(2) * width_days / 10 + 1e-6)  # 10 days old = one half-life
    assert now[1] == pytest.approx(2.0, rel=math.log(2) * width_days / 10 + 1e-6)  # fresh
    assert now[2] == 0.0  # never interacted


def test_a_row_never_sees_its_own_or_later_interactions() -> None:
    rng = np.random.default_rng(0)
    items = rng.integers(0, 5, 200)
    times = np.sort(rng.uniform(0, 30 * DAY, 200))
    t = trend_features(items, times, 5, (1.0, 7.0))
    assert t.table.shape == (t.table.shape[0], 5, 2) and t.row_bucket.shape == (200,)
    assert (t.table[0] == 0).all()  # the first bucket has no past
    # the first row of each item: nothing of that item happened before its bucket started
    first = {int(i): int(np.flatnonzero(items == i)[0]) for i in np.unique(items)}
    for item, row in first.items():
        assert (t.table[t.row_bucket[row], item] == 0).all()
    # the features grow when interactions were counted (monotone in the decayed sense: the last bucket saw them all)
    assert (t.now > 0).sum() == len(first) * 2


def test_only_counted_rows_count_but_every_row_gets_a_bucket() -> None:
    times = np.array([0.0, DAY, 2 * DAY])
    t = trend_features(np.array([0, 0, 1]), times, 2, (1.0,), counted=np.array([False, True, True]))
    full = trend_features(np.array([0, 0, 1]), times, 2, (1.0,))
    assert len(t.row_bucket) == 3
    assert t.now[0, 0] < full.now[0, 0]  # the uncounted day-0 row is missing


def test_bucket_count_is_bounded_by_memory() -> None:
    assert n_buckets_for(100, 4) == MAX_BUCKETS
    big = n_buckets_for(1_000_000, 4)
    assert big * 1_000_000 * 4 <= MAX_TABLE_CELLS and big >= 1
    assert n_buckets_for(10**9, 4) == 1


def trend_tower(trend_dim: int) -> TwoTower:
    spec = TowerSpec(n_items=3, n_users=2, item_dense_dim=1, user_dense_dim=0, embed_dim=4, n_layers=0,
                     trend_dim=trend_dim, temperature=0.5)
    torch.manual_seed(0)
    return TwoTower(spec, torch.tensor([[1.0], [3.0], [5.0]]), torch.zeros(3, 0, dtype=torch.long),
                    torch.zeros(2, 0), torch.ones(3)).eval()


def test_retrieval_embeddings_carry_the_prior_as_one_column() -> None:
    model = trend_tower(2)
    with torch.no_grad():
        model.trend_weight.copy_(torch.tensor([1.0, 2.0]))
    now = torch.tensor([[0.0, 0.0], [1.0, 0.5], [0.0, 3.0]])
    model.set_trend(None, now)
    indptr, hist = torch.tensor([0, 2, 3]), torch.tensor([0, 1, 2])
    with torch.no_grad():
        items, users = model.all_item_embeddings(), model.user_embeddings(indptr, hist, None)
        v = model.encode_items(torch.arange(3))
        u = model.encode_known_users(history_bags(indptr, hist, None, torch.arange(2)), torch.arange(2))
    assert items.shape == (3, 5) and users.shape == (2, 5)
    torch.testing.assert_close(items[:, -1], torch.tensor([0.0, 2.0, 6.0]))  # now @ w
    torch.testing.assert_close(users[:, -1], torch.ones(2))
    torch.testing.assert_close(users @ items.T, (u @ v.T) / 0.5 + torch.tensor([0.0, 2.0, 6.0]))
    new = model.retrieval_items(model.encode_new_items(torch.tensor([[2.0]]), torch.zeros(1, 0, dtype=torch.long)),
                                None)
    assert new.shape == (1, 5) and new[0, -1].item() == 0.0  # a new place has no interactions yet
    assert "trend_now" in model.state_dict()


def test_without_trend_nothing_changes() -> None:
    model = trend_tower(0)
    assert model.trend_weight is None and model.trend_bias(torch.tensor([0])) is None
    assert "trend_now" not in model.state_dict()  # bundles without a trend keep their old layout
    assert model.all_item_embeddings().shape == (3, 4)


def test_trend_bias_is_table_times_weights() -> None:
    model = trend_tower(2)
    table = torch.arange(12, dtype=torch.float32).reshape(2, 3, 2)
    model.set_trend(table, table[-1])
    with torch.no_grad():
        model.trend_weight.copy_(torch.tensor([1.0, 0.5]))
    want = table @ torch.tensor([1.0, 0.5])  # (buckets, items)
    buckets = torch.tensor([1, 0, 1])  # rows in time buckets; only their buckets and the asked items are read
    torch.testing.assert_close(model.trend_bias(buckets), want[buckets])
    torch.testing.assert_close(model.trend_bias(buckets, torch.tensor([2, 2, 0])), want[buckets][:, [2, 2, 0]])


def test_calibration_recovers_the_generating_weights() -> None:
    """Targets drawn from softmax(cf + now . w*) with known w*: the maximum-likelihood fit must find w* again."""
    from geotower.model.trend import calibrate_weights

    gen = torch.Generator().manual_seed(0)
    n_users, n_items, d, rows = 50, 30, 4, 20_000
    user_emb, item_emb = torch.randn(n_users, d, generator=gen), torch.randn(n_items, d, generator=gen)
    now = torch.rand(n_items, 2, generator=gen) * 3
    w_true = torch.tensor([1.5, -0.5])
    users = torch.randint(n_users, (rows,), generator=gen)
    probs = torch.softmax(user_emb[users] @ item_emb.T + now @ w_true, dim=1)
    targets = torch.multinomial(probs, 1, generator=gen)[:, 0]
    w = calibrate_weights(user_emb, item_emb, now, users, targets, torch.empty(0, dtype=torch.long), torch.zeros(2))
    torch.testing.assert_close(w, w_true, atol=0.1, rtol=0)
    # candidate sampling for big catalogues gives the same answer within noise
    w_s = calibrate_weights(user_emb, item_emb, now, users, targets, torch.empty(0, dtype=torch.long), torch.zeros(2),
                            max_columns=20)
    torch.testing.assert_close(w_s, w_true, atol=0.25, rtol=0)


def test_calibration_masks_seen_items() -> None:
    """Item 0 has by far the highest prior but every user has seen it: it must not count as a competitor."""
    from geotower.model.trend import calibrate_weights

    n_users, n_items = 4, 3
    now = torch.tensor([[10.0], [1.0], [0.0]])
    users, targets = torch.tensor([0, 1, 2, 3]), torch.tensor([1, 1, 1, 2])  # item 1 (higher prior) wins 3 of 4
    seen = torch.tensor([u * n_items + 0 for u in range(n_users)])
    zeros_u, zeros_i = torch.zeros(n_users, 2), torch.zeros(n_items, 2)
    w = calibrate_weights(zeros_u, zeros_i, now, users, targets, seen, torch.zeros(1))
    # two candidates, item 1 chosen 3:1 over item 2, prior gap 1 -> w = log 3
    assert w.item() == pytest.approx(math.log(3), abs=1e-3)


def test_ensemble_of_trend_towers_keeps_one_layout() -> None:
    """Known users, new users and new places all come out in the same (members x (d + 1)) space."""
    from geotower.model.ensemble import TowerEnsemble

    members = [trend_tower(2), trend_tower(2)]
    for i, m in enumerate(members):
        with torch.no_grad():
            m.trend_weight.copy_(torch.tensor([1.0 + i, 0.5]))
        m.set_trend(None, torch.tensor([[0.0, 0.0], [1.0, 0.5], [0.0, 3.0]]))
    ens = TowerEnsemble(members)
    indptr, hist = torch.tensor([0, 2, 3]), torch.tensor([0, 1, 2])
    with torch.no_grad():
        items, users = ens.all_item_embeddings(), ens.user_embeddings(indptr, hist, None)
        bags = history_bags(indptr, hist, None, torch.tensor([0]))
        new_user = ens.new_user_embeddings(bags, torch.zeros(1, 0))
        new_item = ens.new_item_embeddings(torch.tensor([[2.0]]), torch.zeros(1, 0, dtype=torch.long))
    assert items.shape == (3, 10) and users.shape == (2, 10) and new_user.shape == (1, 10)
    assert new_item.shape == (1, 10)
    single = [m.user_embeddings(indptr, hist, None) @ m.all_item_embeddings().T for m in members]
    torch.testing.assert_close(users @ items.T, (single[0] + single[1]) / 2)
