"""TwoTower: leave-one-out history pooling, cold-start items, normalisation and the original-design mapping."""

from __future__ import annotations

import pytest
import torch

from geotower.model.history import history_bags
from geotower.model.spec import TowerSpec
from geotower.model.towers import TwoTower

# 3 items with one dense feature each: 1, 3, 5; user 0 likes items {0, 1, 2}, user 1 likes {2}
ITEM_DENSE = torch.tensor([[1.0], [3.0], [5.0]])
INDPTR, HIST = torch.tensor([0, 3, 4]), torch.tensor([0, 1, 2, 2])


def tower(**flags: object) -> TwoTower:
    spec = TowerSpec(n_items=3, n_users=2, item_dense_dim=1, user_dense_dim=0, embed_dim=4, hidden_dim=8,
                     n_layers=1, **flags)  # type: ignore[arg-type]
    torch.manual_seed(0)
    return TwoTower(spec, ITEM_DENSE, torch.zeros(3, 0, dtype=torch.long), torch.zeros(2, 0),
                    torch.tensor([1.0, 1.0, 0.0])).eval()


def test_leave_one_out_pooling_known_answer() -> None:
    model = tower()
    users = torch.tensor([0, 0, 1, 1])
    hist = history_bags(INDPTR, HIST, None, users)
    # rows: user 0 leaving out item 1 -> mean(1, 5) = 3; user 0 leaving out nothing (w 0) -> mean(1, 3, 5) = 3;
    # user 1 leaving out its only item -> empty bag -> 0; user 1 leaving out a non-member -> 5
    hist.exclude, hist.exclude_w = torch.tensor([1, 0, 2, 0]), torch.tensor([1.0, 0.0, 1.0, 0.0])
    pooled = model._bag_mean(hist, model.item_dense)
    torch.testing.assert_close(pooled[:, 0], torch.tensor([3.0, 3.0, 0.0, 5.0]))
    hist.exclude = torch.tensor([0, 0, 2, 0])
    hist.exclude_w = torch.tensor([1.0, 1.0, 1.0, 0.0])  # user 0 leaving out item 0 -> mean(3, 5) = 4
    torch.testing.assert_close(model._bag_mean(hist, model.item_dense)[:2, 0], torch.tensor([4.0, 4.0]))


def test_weighted_history_mean() -> None:
    model = tower()
    hist = history_bags(INDPTR, HIST, torch.tensor([1.0, 0.0, 3.0, 1.0]), torch.tensor([0]))
    assert model._bag_mean(hist, model.item_dense)[0, 0].item() == pytest.approx((1 + 15) / 4)


def test_cold_item_uses_features_only() -> None:
    model = tower()
    # item 2 is "unknown" (never trained): its ID embedding is ignored, so it equals the feature-only path
    torch.testing.assert_close(model.encode_items(torch.tensor([2])),
                               model.encode_new_items(ITEM_DENSE[2:], torch.zeros(1, 0, dtype=torch.long)))
    assert not torch.allclose(model.encode_items(torch.tensor([0])),
                              model.encode_new_items(ITEM_DENSE[:1], torch.zeros(1, 0, dtype=torch.long)))


def test_normalised_outputs_and_score_scale() -> None:
    model = tower(normalize=True, temperature=0.5)
    v = model.all_item_embeddings()
    torch.testing.assert_close(v.norm(dim=1), torch.ones(3))
    u = model.user_embeddings(INDPTR, HIST, None)
    torch.testing.assert_close(u.norm(dim=1), torch.full((2,), 2.0))  # 1 / temperature baked in


def test_original_design_has_no_id_parameters() -> None:
    model = tower(use_item_id=False, use_user_id=False, use_history=False, normalize=False)
    names = [n for n, _ in model.named_parameters()]
    assert not any("item_id" in n or "user_id" in n for n in names)
    assert model.user_in_dim == model.item_in_dim == 1  # user input = profile of item features only
    assert model.score_scale == 1.0


def test_item_bias_is_the_prior_column() -> None:
    """Without timestamps the bias alone fills the extra column; new places get the trained items' mean bias."""
    model = tower(item_bias=True)
    with torch.no_grad():
        model.item_bias.copy_(torch.tensor([1.0, -1.0, 5.0]))  # item 2 is untrained (item_known = 0)
    indptr, hist = torch.tensor([0, 3, 4]), torch.tensor([0, 1, 2, 2])
    with torch.no_grad():
        items, users = model.all_item_embeddings(), model.user_embeddings(indptr, hist, None)
        v = model.encode_items(torch.arange(3))
        new = model.new_item_embeddings(torch.tensor([[2.0]]), torch.zeros(1, 0, dtype=torch.long))
    assert items.shape == (3, 5) and users.shape == (2, 5)
    torch.testing.assert_close(items[:, -1], torch.tensor([1.0, -1.0, 5.0]))
    torch.testing.assert_close(items[:, :-1], v)
    assert new.shape == (1, 5) and new[0, -1].item() == 0.0  # mean of the trained items' biases (1 and -1)
    torch.testing.assert_close(users[:, -1], torch.ones(2))


def test_item_bias_gets_gradients_in_every_loss() -> None:
    import numpy as np

    from geotower.train.batches import BatchSampler, build_train_data
    from geotower.train.loop import two_tower_loss

    data = build_train_data(np.array([0, 0, 1]), np.array([0, 1, 2]), np.ones(3, bool), np.ones(3, np.float32), 2, 3,
                            "softmax")
    for loss in ("softmax", "bpr", "bce"):
        model = tower(item_bias=True).train()
        sampler = BatchSampler(data, loss, 4, 2, logq=False, generator=torch.Generator().manual_seed(0),
                               full_softmax=loss == "softmax")
        two_tower_loss(loss)(model, next(sampler.epoch())).backward()
        assert model.item_bias.grad is not None and model.item_bias.grad.abs().sum() > 0, loss


def test_pooled_item_inputs_equal_per_level_pooling() -> None:
    """Big bags pool one table of the concatenated item inputs and ID embeddings; the result equals pooling each
    grid level and the (trained) IDs separately."""

    torch.manual_seed(0)
    n_i, n_u = 50, 20
    spec = TowerSpec(n_items=n_i, n_users=n_u, item_dense_dim=3, user_dense_dim=0, cell_vocab_sizes=[6, 4],
                     cell_dim=5, embed_dim=8, n_layers=0, use_history=True)
    known = (torch.arange(n_i) % 3 > 0).float()  # untrained IDs must stay out of the pooled ID part too
    m = TwoTower(spec, torch.randn(n_i, 3), torch.randint(0, 4, (n_i, 2)), torch.zeros(n_u, 0), known)
    indptr = torch.arange(0, 201, 10)  # 20 users x 10 history items
    hist_items = torch.randint(0, n_i, (200,))
    users = torch.randint(0, n_u, (30,))
    h = history_bags(indptr, hist_items, None, users, hist_items[indptr[users]], torch.ones(30))
    assert len(h.items) >= n_i  # the concatenated path
    fast = torch.cat(m._pool(h), dim=1)
    slow = [m._bag_mean(h, m.item_dense)] + [m._bag_mean(h, emb.weight, m.item_cells[:, lv], pad=0)
                                             for lv, emb in enumerate(m.cell_emb)]
    slow.append(m._bag_mean(h, m.item_id.weight, scale=m.item_known))
    torch.testing.assert_close(fast, torch.cat(slow, dim=1), rtol=1e-5, atol=1e-6)


def test_localized_bags_pool_like_catalogue_bags() -> None:
    """Training bags over a local table (the batch's distinct items, :func:`localize`) give the same means and the
    same gradients as bags over the whole catalogue, leave-one-out included; the table holds only the bags' items
    and the left-out targets."""
    from geotower.model.history import localize

    torch.manual_seed(1)
    n_i, n_u = 40, 12
    spec = TowerSpec(n_items=n_i, n_users=n_u, item_dense_dim=3, user_dense_dim=0, cell_vocab_sizes=[6, 4],
                     cell_dim=5, embed_dim=8, n_layers=0, use_history=True)
    known = (torch.arange(n_i) % 4 > 0).float()
    m = TwoTower(spec, torch.randn(n_i, 3), torch.randint(0, 4, (n_i, 2)), torch.zeros(n_u, 0), known)
    indptr = torch.arange(0, 37, 3)  # 12 users x 3 history items: small bags, the per-part path
    hist_items = torch.randint(0, n_i, (36,))
    users = torch.randint(0, n_u, (16,))
    targets = torch.randint(0, n_i, (16,))
    targets[:8] = hist_items[indptr[users[:8]]]  # half the rows leave a bag member out
    h = history_bags(indptr, hist_items, None, users, targets, (torch.arange(16) < 8).float())
    local = localize(h)
    assert local.table_items is not None and len(local.table_items) < n_i
    assert set(local.table_items.tolist()) == set(h.items.tolist()) | set(targets.tolist())
    grads = []
    for bags in (h, local):
        m.zero_grad()
        out = torch.cat(m._pool(bags), dim=1)
        (out * torch.linspace(-1, 1, out.shape[1])).sum().backward()
        grads.append((out.detach(), [p.grad.clone() for p in (m.item_id.weight, *(e.weight for e in m.cell_emb))]))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=1e-5, atol=1e-6)
    for a, b in zip(grads[0][1], grads[1][1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_items_without_dense_features_pool_on_two_threads() -> None:
    """Check-in data sets have no dense item features: pooling that zero-width part must not reach
    embedding_bag, which fails on a zero-width table once torch runs 2+ threads (``train.threads``)."""
    from geotower.model.history import localize

    spec = TowerSpec(n_items=30, n_users=5, item_dense_dim=0, user_dense_dim=0, cell_vocab_sizes=[6],
                     cell_dim=4, embed_dim=8, n_layers=0, use_history=True)
    m = TwoTower(spec, torch.zeros(30, 0), torch.randint(0, 6, (30, 1)), torch.zeros(5, 0), torch.ones(30))
    indptr, items = torch.arange(0, 51, 10), torch.randint(0, 30, (50,))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        bags = localize(history_bags(indptr, items, None, torch.tensor([0, 1, 1, 4])))
        parts = m._pool(bags)
    finally:
        torch.set_num_threads(before)
    assert parts[0].shape == (4, 0) and parts[1].shape == (4, 4 + 8)


@pytest.mark.parametrize("weighted", [False, True])
def test_profiles_pool_like_item_bags(weighted: bool) -> None:
    """A :class:`Profile` (dense sums from the sampler, one bag per grid level over each user's distinct cells) gives
    the means and the gradients of the item bags, with leave-one-out, unknown cells (0), users whose only item is
    left out (zeros) and confidence weights."""
    from geotower.model.history import cell_bags, localize, user_profiles

    torch.manual_seed(2)
    n_i, n_u = 40, 12
    spec = TowerSpec(n_items=n_i, n_users=n_u, item_dense_dim=3, user_dense_dim=0, cell_vocab_sizes=[6, 4],
                     cell_dim=5, embed_dim=8, n_layers=0, use_history=False)
    cells = torch.randint(0, 4, (n_i, 2))  # 0 = unknown cell
    m = TwoTower(spec, torch.randn(n_i, 3), cells, torch.zeros(n_u, 0), torch.ones(n_i))
    counts = torch.tensor([3, 1, 4, 2, 5, 3, 1, 2, 6, 3, 2, 4])
    indptr = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(counts, 0)])
    hist_items = torch.cat([torch.randperm(n_i)[:int(c)].sort().values for c in counts])
    w = torch.rand(len(hist_items)) + 0.5 if weighted else torch.ones(len(hist_items))
    users = torch.randint(0, n_u, (20,))
    users[0] = 1  # user 1 has one item: leaving it out empties the bag
    targets, in_bag = torch.randint(0, n_i, (20,)), torch.arange(20) < 12
    targets[in_bag] = hist_items[indptr[users[in_bag]]]
    ex_w = torch.where(in_bag, w[indptr[users]], torch.zeros(20))
    bags = localize(history_bags(indptr, hist_items, w if weighted else None, users, targets, ex_w))
    prof = user_profiles(indptr, hist_items, w, cell_bags(indptr, hist_items, w, cells), m.item_dense, users)
    prof.exclude, prof.exclude_w = targets, ex_w
    got = []
    for h in (bags, prof):
        m.zero_grad()
        out = torch.cat(m._pool(h), dim=1)
        (out * torch.linspace(-1, 1, out.shape[1])).sum().backward()
        got.append((out.detach(), [e.weight.grad.clone() for e in m.cell_emb]))
    torch.testing.assert_close(got[0][0], got[1][0], rtol=1e-5, atol=1e-5)
    assert got[1][0][0].abs().sum() == 0  # the emptied bag
    for a, b in zip(got[0][1], got[1][1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_profile_refuses_towers_that_pool_item_ids() -> None:
    from geotower.model.history import Profile

    model = tower(use_history=True)
    empty = Profile(torch.zeros(1, dtype=torch.long), torch.ones(1), torch.zeros(1, 1), [])
    with pytest.raises(ValueError, match="item IDs"):
        model._pool(empty)
