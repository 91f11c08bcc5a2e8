"""train/sampling.py: confidence weights of the loss, and which bags the sampler builds."""

from __future__ import annotations

import numpy as np

from geotower.train.sampling import confidence


def test_confidence_transforms() -> None:
    w = np.array([1.0, 3.0, 0.0], dtype=np.float32)
    np.testing.assert_allclose(confidence(w, "linear"), w)
    np.testing.assert_allclose(confidence(w, "none"), [1.0, 1.0, 1.0])
    np.testing.assert_allclose(confidence(w, "log1p"), 1 + np.log1p(w), rtol=1e-6)


def test_sampler_builds_profiles_unless_the_towers_pool_item_ids() -> None:
    """With item inputs and no pooled item IDs the batches carry profiles whose dense sums are the history's sums
    (user 0 likes items 0 and 1); pooled IDs (``model.use_history``) need item bags."""
    import torch

    from geotower.config import resolve
    from geotower.model.history import History, Profile
    from geotower.train.batches import build_train_data
    from geotower.train.sampling import make_sampler

    d = build_train_data(np.array([0, 0, 1]), np.array([0, 1, 2]), np.ones(3, bool), np.ones(3), n_users=2,
                         n_items=3, loss="softmax")
    inputs = (np.array([[1.0], [3.0], [5.0]], np.float32), np.array([[1], [0], [2]]))
    cfg = resolve(None, ["model.use_history=false", "train.batch_size=3"])
    batch = next(make_sampler(d, cfg, torch.Generator().manual_seed(0), inputs).epoch())
    assert isinstance(batch.history, Profile)
    sums = batch.history.dense[batch.history.rows][:, 0]
    assert sums.tolist() == [4.0 if u == 0 else 5.0 for u in batch.users.tolist()]
    assert [len(c) for c, _, _ in batch.history.cells] == [2]  # user 0: cell 1 (item 1 has none), user 1: cell 2
    with_ids = resolve(None, ["model.use_history=true", "train.batch_size=3"])
    assert isinstance(next(make_sampler(d, with_ids, torch.Generator().manual_seed(0), inputs).epoch()).history,
                      History)
    assert isinstance(next(make_sampler(d, cfg, torch.Generator().manual_seed(0)).epoch()).history, History)
