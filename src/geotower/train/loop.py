"""A model-agnostic training loop with early stopping; logging, evaluation and checkpoints are plugged in.

``fit`` knows nothing about towers: it gets a ``loss_fn(model, batch)``, a batch source and an optional
``validate(model) -> metrics`` function (injected by the pipeline, so ``train`` never imports ``evaluate``).
:func:`two_tower_loss` is the loss function for :class:`~geotower.model.towers.TwoTower`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from geotower.errors import GeotowerError
from geotower.model.losses import bce_loss, bpr_loss, softmax_loss
from geotower.model.towers import TwoTower
from geotower.train.batches import Batch


@dataclass
class LoopState:
    """Everything besides weights/optimizer/RNG that a resumed run needs to continue identically."""

    epoch: int = 0  # completed epochs
    step: int = 0
    best_epoch: int = 0
    best_metric: float = -math.inf
    bad_epochs: int = 0
    stopped: bool = False
    history: list[dict[str, float]] = field(default_factory=list)
    best_weights: dict[str, Tensor] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "step": self.step, "best_epoch": self.best_epoch,
                "best_metric": self.best_metric if math.isfinite(self.best_metric) else None,
                "bad_epochs": self.bad_epochs, "stopped": self.stopped, "history": self.history}

    @classmethod
    def from_json(cls, d: dict[str, Any], best_weights: dict[str, Tensor] | None) -> LoopState:
        best = d["best_metric"]
        return cls(d["epoch"], d["step"], d["best_epoch"], -math.inf if best is None else best, d["bad_epochs"],
                   d["stopped"], list(d["history"]), best_weights)


class Callback(Protocol):
    """Hooks called by :func:`fit`; every method is optional in spirit (implement as no-ops)."""

    def on_step(self, state: LoopState, loss: float) -> None: ...

    def on_epoch_end(self, state: LoopState, model: nn.Module) -> None: ...

    def on_train_end(self, state: LoopState) -> None: ...


class BatchSource(Protocol):
    def __len__(self) -> int: ...

    def epoch(self) -> Iterator[Any]: ...


def _update_best(state: LoopState, model: nn.Module, score: float | None, patience: int) -> None:
    """Early stopping bookkeeping; keeps a copy of the best weights (last epoch when there is no metric)."""
    if score is None or score > state.best_metric:
        state.best_metric = -math.inf if score is None else score
        state.best_epoch, state.bad_epochs = state.epoch, 0
        state.best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return
    state.bad_epochs += 1
    if patience > 0 and state.bad_epochs >= patience:
        state.stopped = True


def _train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, batches: BatchSource,
                 loss_fn: Callable[[nn.Module, Any], Tensor], state: LoopState, callbacks: list[Callback],
                 progress: bool) -> float:
    model.train()
    total, n = 0.0, 0
    bar = tqdm(batches.epoch(), total=len(batches), disable=not progress, desc=f"epoch {state.epoch + 1}",
               leave=False)
    for batch in bar:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model, batch)
        if not torch.isfinite(loss):
            raise GeotowerError(f"training diverged: loss is {loss.item()} at step {state.step + 1}; "
                                "try a smaller train.lr")
        loss.backward()
        optimizer.step()
        state.step += 1
        value = float(loss.item())
        total, n = total + value, n + 1
        bar.set_postfix(loss=f"{value:.4f}")
        for cb in callbacks:
            cb.on_step(state, value)
    return total / max(n, 1)


def check_finite_weights(model: nn.Module, epoch: int) -> None:
    """Stop a diverged training before its weights are validated, checkpointed or saved (reliability hook)."""
    for name, p in model.named_parameters():
        if not torch.isfinite(p).all():
            raise GeotowerError(f"training diverged: weight {name} is NaN/infinite after epoch {epoch}; "
                                "try a smaller train.lr (nothing was saved)")


def fit(model: nn.Module, optimizer: torch.optim.Optimizer, batches: BatchSource,
        loss_fn: Callable[[nn.Module, Any], Tensor], epochs: int, patience: int = 0,
        validate: Callable[[nn.Module], dict[str, float]] | None = None, metric: str = "ndcg",
        callbacks: list[Callback] | None = None, state: LoopState | None = None, progress: bool = True
        ) -> LoopState:
    """Train until ``epochs`` or early stopping; restores the best epoch's weights at the end.

    Args:
        model, optimizer: what to train (their state may come from a checkpoint).
        batches: ``epoch()`` yields the batches of one epoch.
        loss_fn: ``loss_fn(model, batch)`` -> scalar loss.
        epochs: total epochs (a resumed ``state`` counts its completed ones).
        patience: stop after this many epochs without a better ``metric``; 0 disables.
        validate: ``validate(model)`` -> metrics after each epoch (called under ``no_grad`` in eval mode).
        metric: the key of the metrics that early stopping maximises.
        callbacks: logging and checkpointing hooks (called in order after each step/epoch).
        state: the loop state to continue from (resume), or None for a fresh run.
        progress: show tqdm bars.
    """
    state = state or LoopState()
    callbacks = callbacks or []
    while state.epoch < epochs and not state.stopped:
        loss = _train_epoch(model, optimizer, batches, loss_fn, state, callbacks, progress)
        model.eval()
        with torch.no_grad():
            metrics = validate(model) if validate is not None else {}
        state.epoch += 1
        check_finite_weights(model, state.epoch)
        state.history.append({"epoch": state.epoch, "loss": loss, **metrics})
        _update_best(state, model, metrics.get(metric), patience)
        for cb in callbacks:
            cb.on_epoch_end(state, model)
    if state.best_weights is not None:
        model.load_state_dict(state.best_weights)
    for cb in callbacks:
        cb.on_train_end(state)
    model.eval()
    return state


def two_tower_loss(loss: str) -> Callable[[nn.Module, Any], Tensor]:
    """The loss function ``fit`` calls for a :class:`TwoTower` and a :class:`Batch` ("bce", "bpr", "softmax")."""

    def step(model: nn.Module, batch: Batch) -> Tensor:
        if not isinstance(model, TwoTower):
            raise TypeError("two_tower_loss expects a TwoTower")
        u = model.encode_known_users(batch.history, batch.users)  # (b, d)
        scale = model.score_scale
        prior = None if batch.buckets is None else model.trend_bias()  # (buckets, n_items) or None
        bias = model.item_bias  # (n_items,) or None
        if loss == "softmax":
            v = model.encode_items(batch.unique_items)  # (u, d): each distinct candidate once
            full = batch.full  # full softmax: the columns are the catalogue in order, no gather
            # (a column gather over (b, n_items) logits costs a sort of b * n_items indices in its backward)
            logits = u @ v.T * scale if full else (u @ v.T)[:, batch.columns] * scale  # (b, n_items) / (b, b + m)
            if prior is not None:
                p = prior[batch.buckets] if full else prior[:, batch.unique_items][batch.buckets][:, batch.columns]
                logits = logits + p
            if bias is not None:
                logits = logits + (bias if full else bias[batch.unique_items][batch.columns])[None, :]
            target = torch.arange(len(batch.users)) if batch.target is None else batch.target
            return softmax_loss(logits, target, batch.weights, batch.log_q, batch.invalid)
        pos = (u * model.encode_items(batch.items)).sum(dim=1) * scale  # (b,)
        if prior is not None:
            pos = pos + prior[batch.buckets, batch.items]
        if bias is not None:
            pos = pos + bias[batch.items]
        neg = None
        if batch.negatives.numel():
            b, n = batch.negatives.shape
            nv = model.encode_items(batch.negatives.reshape(-1)).reshape(b, n, -1)  # (b, n, d)
            neg = torch.einsum("bd,bnd->bn", u, nv) * scale  # (b, n)
            if prior is not None:
                neg = neg + prior[batch.buckets[:, None], batch.negatives]
            if bias is not None:
                neg = neg + bias[batch.negatives]
        if loss == "bpr":
            if neg is None:
                raise GeotowerError("train.loss=\"bpr\" needs train.n_negatives >= 1")
            return bpr_loss(pos, neg, batch.weights, batch.neg_valid)
        return bce_loss(pos, batch.labels, batch.weights, neg, batch.neg_valid)

    return step
