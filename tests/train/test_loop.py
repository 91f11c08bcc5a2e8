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
