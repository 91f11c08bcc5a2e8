"""fit(): early stopping on the injected metric, best-weights restore, divergence error, callbacks order."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn

from geotower.errors import GeotowerError
from geotower.train.loop import LoopState, fit


class Batches:
    """Two batches per epoch of a 1-d regression toward y = 2x."""

    def __len__(self) -> int:
        return 2

    def epoch(self) -> Iterator[torch.Tensor]:
        yield from (torch.tensor([[1.0]]), torch.tensor([[2.0]]))


def mse(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return ((model(x) - 2 * x) ** 2).mean()


class Recorder:
    def __init__(self) -> None:
        self.steps: list[int] = []
        self.weights: list[float] = []
        self.ended = False

    def on_step(self, state: LoopState, loss: float) -> None:
        self.steps.append(state.step)

    def on_epoch_end(self, state: LoopState, model: nn.Module) -> None:
        self.weights.append(float(model.weight.item()))  # type: ignore[union-attr]

    def on_train_end(self, state: LoopState) -> None:
        self.ended = True


def test_early_stopping_restores_best_epoch() -> None:
    torch.manual_seed(0)
    model = nn.Linear(1, 1, bias=False)
    scores = iter([0.1, 0.5, 0.4, 0.3, 0.9])  # best at epoch 2; patience 2 stops after epoch 4
    rec = Recorder()
    state = fit(model, torch.optim.SGD(model.parameters(), lr=0.01), Batches(), mse, epochs=10, patience=2,
                validate=lambda m: {"ndcg": next(scores)}, callbacks=[rec], progress=False)
    assert (state.epoch, state.best_epoch, state.stopped) == (4, 2, True)
    assert rec.steps == list(range(1, 9)) and rec.ended
    assert model.weight.item() == pytest.approx(rec.weights[1])  # epoch-2 weights restored
    assert [h["ndcg"] for h in state.history] == [0.1, 0.5, 0.4, 0.3]


def test_without_validation_keeps_last_epoch() -> None:
    model = nn.Linear(1, 1, bias=False)
    rec = Recorder()
    state = fit(model, torch.optim.SGD(model.parameters(), lr=0.01), Batches(), mse, epochs=3, callbacks=[rec],
                progress=False)
    assert state.best_epoch == 3 and model.weight.item() == pytest.approx(rec.weights[-1])


def test_divergence_is_a_clear_error() -> None:
    model = nn.Linear(1, 1, bias=False)
    with pytest.raises(GeotowerError, match="diverged"):
        fit(model, torch.optim.SGD(model.parameters(), lr=0.01), Batches(),
            lambda m, x: m(x).sum() * float("nan"), epochs=1, progress=False)


@pytest.mark.parametrize("loss", ["softmax", "bpr", "bce"])
def test_trend_prior_is_learned_when_recent_popularity_predicts(loss: str) -> None:
    """Every day one item is 'in fashion' and all rows of that day and the next pick it: the prior must learn w > 0."""
    import numpy as np

    from geotower.model.spec import TowerSpec
    from geotower.model.towers import TwoTower
    from geotower.train.batches import BatchSampler, build_train_data
    from geotower.train.loop import two_tower_loss

    rng = np.random.default_rng(0)
    n_users, n_items, n_rows = 40, 20, 2000
    times = np.sort(rng.uniform(0, 40 * 86_400.0, n_rows))
    fashion = rng.integers(0, n_items, 41)
    items = np.where(rng.random(n_rows) < 0.8, fashion[(times // 86_400).astype(int)], rng.integers(0, n_items, n_rows))
    users = rng.integers(0, n_users, n_rows)
    data = build_train_data(users, items, np.ones(n_rows, bool), np.ones(n_rows, np.float32), n_users, n_items, loss,
                            times=times, half_lives_days=(0.5, 4.0))
    assert data.buckets is not None and data.trend_table is not None and data.trend_now is not None
    spec = TowerSpec(n_items=n_items, n_users=n_users, item_dense_dim=0, user_dense_dim=0, embed_dim=8, n_layers=0,
                     use_item_features=False, use_history=False, trend_dim=2, temperature=0.5)
    torch.manual_seed(0)
    model = TwoTower(spec, torch.zeros(n_items, 0), torch.zeros(n_items, 0, dtype=torch.long), torch.zeros(n_users, 0),
                     torch.ones(n_items))
    model.set_trend(data.trend_table, data.trend_now)
    sampler = BatchSampler(data, loss, 256, 4, logq=False, generator=torch.Generator().manual_seed(0),
                           full_softmax=True)
    batch = next(sampler.epoch())
    assert batch.buckets is not None and batch.buckets.shape == batch.users.shape
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    fit(model, opt, sampler, two_tower_loss(loss), epochs=5, progress=False)
    assert model.trend_weight is not None and model.trend_weight[0].item() > 0.3  # the short half-life carries it


def test_prefetched_keeps_order_and_raises_the_builders_error() -> None:
    from geotower.train.loop import prefetched

    assert list(prefetched(iter(range(50)), depth=2)) == list(range(50))

    def broken() -> Iterator[int]:
        yield 1
        raise ValueError("bad batch 2")

    got = []
    with pytest.raises(ValueError, match="bad batch 2"):
        for x in prefetched(broken()):
            got.append(x)
    assert got == [1]


def test_prefetched_stops_its_thread_when_the_consumer_stops() -> None:
    import threading

    from geotower.train.loop import prefetched

    def endless() -> Iterator[int]:
        i = 0
        while True:
            yield i
            i += 1

    it = prefetched(endless(), depth=1)
    assert next(it) == 0
    it.close()  # the consumer gives up (e.g. training raised): the producer must not hang the process
    assert not any(t.name == "geotower-batches" for t in threading.enumerate())


def test_lr_decay_falls_linearly_to_zero_over_the_epochs() -> None:
    model = nn.Linear(1, 1, bias=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.4)
    seen: list[float] = []

    class LrRecorder(Recorder):
        def on_step(self, state: LoopState, loss: float) -> None:
            seen.append(opt.param_groups[0]["lr"])

    fit(model, opt, Batches(), mse, epochs=2, callbacks=[LrRecorder()], progress=False, lr_decay=True)
    assert seen == pytest.approx([0.4, 0.3, 0.2, 0.1])  # 4 steps: the rate each step used
