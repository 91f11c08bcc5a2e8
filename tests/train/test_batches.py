"""Batch construction: CSR of positives, the vectorised positive check, negatives, softmax masks, determinism."""

from __future__ import annotations

import numpy as np
import torch

from geotower.train.batches import BatchSampler, build_train_data, geo_neighbours, is_positive

# 3 users x 5 items; user 0 likes {0, 1} (item 1 twice, weights 1 + 2), user 1 likes {2}, user 2 rated 3 badly
USERS = np.array([0, 0, 0, 1, 2])
ITEMS = np.array([0, 1, 1, 2, 3])
POS = np.array([True, True, True, True, False])
W = np.array([1.0, 1.0, 2.0, 1.0, 1.0])


def data(loss: str = "softmax", neighbours: tuple[np.ndarray, np.ndarray] | None = None):  # type: ignore[no-untyped-def]
    return build_train_data(USERS, ITEMS, POS, W, n_users=3, n_items=5, loss=loss, neighbours=neighbours)


def test_build_train_data_known_answer() -> None:
    d = data()
    assert d.hist_indptr.tolist() == [0, 2, 3, 3]
    assert d.hist_items.tolist() == [0, 1, 2]
    assert d.hist_weights.tolist() == [1.0, 3.0, 1.0]
    assert d.pos_keys.tolist() == [0, 1, 7]  # user * 5 + item
    assert len(d.users) == 4  # positives only for softmax
    np.testing.assert_allclose(np.exp(d.log_pop.numpy())[:3], [0.25, 0.5, 0.25])
    assert len(data("bce").users) == 5 and data("bce").labels.tolist() == [1, 1, 1, 1, 0]


def test_is_positive_broadcasts() -> None:
    d = data()
    got = is_positive(d.pos_keys, torch.tensor([[0], [1]]), torch.tensor([[0, 1, 2]]), 5)
    assert got.tolist() == [[True, True, False], [False, False, True]]


def sampler(loss: str, seed: int = 0, n_neg: int = 3, hard: float = 0.0, d=None) -> BatchSampler:  # type: ignore[no-untyped-def]
    return BatchSampler(d or data(loss), loss, batch_size=3, n_negatives=n_neg, hard_ratio=hard, logq=True,
                        leave_one_out=True, weighted_history=False, generator=torch.Generator().manual_seed(seed))


def test_bpr_negatives_masked_exactly_where_positive() -> None:
    for batch in sampler("bpr", n_neg=50).epoch():
        expect = is_positive(data().pos_keys, batch.users[:, None], batch.negatives, 5)
        assert torch.equal(batch.neg_valid, ~expect)
        assert batch.negatives.shape == (len(batch.users), 50)


def test_softmax_mask_matches_brute_force_and_logq() -> None:
    d = data()
    for batch in sampler("softmax", n_neg=2).epoch():
        cols = batch.unique_items
        assert torch.equal(cols, torch.unique(cols)) and torch.equal(cols[batch.target], batch.items)
        brute = is_positive(d.pos_keys, batch.users[:, None], cols[None, :], 5)
        assert torch.equal(batch.invalid, brute)
        assert batch.log_q.shape == (len(cols),) and batch.target_log_q.shape == (len(batch.items),)
        assert batch.history.exclude is not None and torch.equal(batch.history.exclude, batch.items)


def _loss_over_copies(batch, d, u: torch.Tensor, table: torch.Tensor, logq: bool) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """The reference: softmax over every copy (the b positives, then the m negatives), each with its own logQ;
    the row's own copy is its target and every other copy of a positive of the row's user is masked."""
    copies = torch.cat([batch.items, batch.negatives])
    b, m = len(batch.items), len(batch.negatives)
    log_q = torch.zeros(b + m)
    if logq:
        log_q = torch.cat([d.log_pop[batch.items] + float(np.log(b)), torch.full((m,), float(np.log(m / d.n_items)))])
    logits = u @ table[copies].T - log_q[None, :]
    invalid = is_positive(d.pos_keys, batch.users[:, None], copies[None, :], d.n_items)
    invalid[torch.arange(b), torch.arange(b)] = False
    logits = logits.masked_fill(invalid, float("-inf"))
    return (torch.nn.functional.cross_entropy(logits, torch.arange(b), reduction="none") * batch.weights).sum() \
        / batch.weights.sum()


def test_distinct_columns_give_the_loss_and_gradients_of_the_copies() -> None:
    """Items repeat in a batch (popular positives, negatives drawn twice): one column per distinct item with the
    copies' summed exp(-logQ) is the same softmax, at fewer logits."""
    from geotower.model.losses import softmax_loss

    # 8 users x 4 items, item 0 liked by everyone: every batch holds it several times
    users = np.repeat(np.arange(8), 2)
    items = np.array([0, 1, 0, 2, 0, 3, 0, 1, 0, 2, 0, 3, 0, 1, 0, 2])
    d = build_train_data(users, items, np.ones(16, bool), np.linspace(1, 2, 16), n_users=8, n_items=4,
                         loss="softmax")
    for logq in (True, False):
        s = BatchSampler(d, "softmax", batch_size=16, n_negatives=1, logq=logq, leave_one_out=True,
                         weighted_history=False, generator=torch.Generator().manual_seed(1))
        (batch,) = list(s.epoch())
        assert len(batch.unique_items) < 2 * len(batch.items)  # there are copies to fold
        gen = torch.Generator().manual_seed(0)
        u = torch.randn(16, 5, generator=gen, requires_grad=True)
        table = torch.randn(4, 5, generator=gen, requires_grad=True)
        ref = _loss_over_copies(batch, d, u, table, logq)
        ref_grads = torch.autograd.grad(ref, [u, table])
        got = softmax_loss(u @ table[batch.unique_items].T, batch.target, batch.weights, batch.log_q,
                           batch.invalid, batch.target_log_q)
        got_grads = torch.autograd.grad(got, [u, table])
        torch.testing.assert_close(got, ref)
        for g, r in zip(got_grads, ref_grads, strict=True):
            torch.testing.assert_close(g, r)


def test_same_seed_same_batches() -> None:
    a = [b.negatives for b in sampler("bpr", seed=3).epoch()]
    b = [b.negatives for b in sampler("bpr", seed=3).epoch()]
    c = [b.negatives for b in sampler("bpr", seed=4).epoch()]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))


def test_geo_neighbours_and_hard_negatives() -> None:
    lat = np.array([60.170, 60.174, 60.300, 60.3001, 60.170])  # 0-1 ~445 m, 2-3 ~11 m, 4 = 0's twin
    lon = np.full(5, 24.94)
    indptr, nb = geo_neighbours(lat, lon, radius_km=1.0)
    groups = [sorted(nb[indptr[i]:indptr[i + 1]].tolist()) for i in range(5)]
    assert groups == [[1, 4], [0, 4], [3], [2], [0, 1]]
    d = data("bpr", neighbours=(indptr, nb))
    for batch in sampler("bpr", n_neg=20, hard=1.0, d=d).epoch():
        for item, negs in zip(batch.items.tolist(), batch.negatives.tolist(), strict=True):
            assert set(negs) <= set(groups[item])


def test_full_softmax_columns_are_the_catalogue() -> None:
    s = BatchSampler(data("softmax"), "softmax", batch_size=4, n_negatives=3, hard_ratio=0.0, logq=True,
                     leave_one_out=True, weighted_history=False, generator=torch.Generator().manual_seed(0),
                     full_softmax=True)
    (b,) = list(s.epoch())
    assert b.unique_items.tolist() == [0, 1, 2, 3, 4] and b.log_q is None  # exact softmax: no sampling correction
    assert b.target.tolist() == b.items.tolist()
    # invalid = the row user's positives (user 0: {0, 1}; user 1: {2}); the loss unmasks each row's own target
    expected = [[i in {0: {0, 1}, 1: {2}}[u] for i in range(5)] for u in b.users.tolist()]
    assert b.invalid.tolist() == expected
