"""A model-agnostic training loop with early stopping; logging, evaluation and checkpoints are plugged in.

``fit`` knows nothing about towers: it gets a ``loss_fn(model, batch)``, a batch source and an optional
``validate(model) -> metrics`` function (injected by the pipeline, so ``train`` never imports ``evaluate``).
:func:`two_tower_loss` is the loss function for :class:`~geotower.model.towers.TwoTower`.
"""

from __future__ import annotations

import math
import queue
import threading
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
from geotower.train.optim import OptimizerLike


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
        return cls(epoch=d["epoch"], step=d["step"], best_epoch=d["best_epoch"],
                   best_metric=-math.inf if best is None else best, bad_epochs=d["bad_epochs"], stopped=d["stopped"],
                   history=list(d["history"]), best_weights=best_weights)


class Callback(Protocol):
    """Hooks called by :func:`fit`; every method is optional in spirit (implement as no-ops)."""

    def on_step(self, state: LoopState, loss: float) -> None: ...

    def on_epoch_end(self, state: LoopState, model: nn.Module) -> None: ...

    def on_train_end(self, state: LoopState) -> None: ...


class BatchSource(Protocol):
    """What ``fit`` iterates; a source with ``prefetch = False`` is built on the training thread (see
    :func:`prefetched`)."""

    def __len__(self) -> int: ...

    def epoch(self) -> Iterator[Any]: ...


def _update_best(state: LoopState, model: nn.Module, score: float | None, patience: int) -> None:
    """Early stopping bookkeeping; keeps a copy of the best weights.

    Without a metric (refit models, fixed budgets) the last epoch is the result and the model holds it: no copy.
    Why: the copy taken after every epoch there was never used; at full Yelp size one is ~1.1 GB ((2M users + 152k
    items) x 128 floats, computed). At 1/4 size the peaks moved little (largest process 3,943 -> 3,917 MiB,
    docs/scale.md): the copy was not held at the peak there.
    """
    if score is None:
        state.best_metric, state.best_epoch, state.bad_epochs, state.best_weights = -math.inf, state.epoch, 0, None
        return
    if score > state.best_metric:
        state.best_metric = score
        state.best_epoch, state.bad_epochs = state.epoch, 0
        state.best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return
    state.bad_epochs += 1
    if patience > 0 and state.bad_epochs >= patience:
        state.stopped = True


def _decay_lr(optimizer: OptimizerLike, step: int, total: int) -> None:
    """Linear learning-rate decay: each group's first learning rate times ``1 - step / total``.

    Why: with a constant rate of 1e-2 the validation metric jumps by 10 % between epochs (Singapore); decaying to
    zero over a fixed budget ends training in a flat, low-noise point, so no epoch has to be picked.
    """
    for group in optimizer.param_groups:
        base = group.setdefault("initial_lr", group["lr"])
        group["lr"] = base * max(0.0, 1.0 - step / max(total, 1))


def _train_epoch(model: nn.Module, optimizer: OptimizerLike, batches: BatchSource,
                 loss_fn: Callable[[nn.Module, Any], Tensor], state: LoopState, callbacks: list[Callback],
                 progress: bool, decay_steps: int = 0) -> float:
    model.train()
    total, n = 0.0, 0
    source = prefetched(batches.epoch()) if getattr(batches, "prefetch", True) else batches.epoch()
    # no bar object at all without progress: a forked refit process (geotower.train.processes) never touches tqdm's
    # locks, which another thread of the parent may have held when it forked
    bar = tqdm(source, total=len(batches), desc=f"epoch {state.epoch + 1}", leave=False) if progress else None
    for batch in source if bar is None else bar:
        if decay_steps:
            _decay_lr(optimizer, state.step, decay_steps)
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
        if bar is not None:
            bar.set_postfix(loss=f"{value:.4f}")
        for cb in callbacks:
            cb.on_step(state, value)
    return total / max(n, 1)


def prefetched(batches: Iterator[Any], depth: int = 2) -> Iterator[Any]:
    """The same batches, built ``depth`` ahead in a background thread while the caller trains on the last one.

    Building a batch (history bags, negatives, masks) is ~15 % of a step and only uses the sampler's own
    generator, so a second core can do it meanwhile; torch ops release the GIL. The order and content of the
    batches are unchanged (one producer), so results stay byte-identical. The thread ends with the epoch, or when
    the consumer stops early (an exception in training), and an error while building is raised here.
    """
    q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(kind: str, item: Any) -> bool:  # False once the consumer has stopped
        while not stop.is_set():
            try:
                q.put((kind, item), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in batches:
                if not put("batch", batch):
                    return
            put("end", None)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put("error", exc)

    worker = threading.Thread(target=produce, name="geotower-batches", daemon=True)
    worker.start()
    try:
        while True:
            kind, item = q.get()
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


def check_finite_weights(model: nn.Module, epoch: int) -> None:
    """Stop a diverged training before its weights are validated, checkpointed or saved (reliability hook)."""
    for name, p in model.named_parameters():
        if not torch.isfinite(p).all():
            raise GeotowerError(f"training diverged: weight {name} is NaN/infinite after epoch {epoch}; "
                                "try a smaller train.lr (nothing was saved)")


def fit(model: nn.Module, optimizer: OptimizerLike, batches: BatchSource,
        loss_fn: Callable[[nn.Module, Any], Tensor], epochs: int, patience: int = 0,
        validate: Callable[[nn.Module], dict[str, float]] | None = None, metric: str = "ndcg",
        callbacks: list[Callback] | None = None, state: LoopState | None = None, progress: bool = True,
        lr_decay: bool = False, decay_epochs: int | None = None) -> LoopState:
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
        lr_decay: decay the learning rate linearly to zero over ``epochs`` (see :func:`_decay_lr`).
        decay_epochs: the schedule's length in epochs instead of ``epochs``, for a model trained one ``fit`` call
            per epoch (:class:`~geotower.train.setup.FollowerPool`).
    """
    state = state or LoopState()
    callbacks = callbacks or []
    decay = (decay_epochs or epochs) * len(batches) if lr_decay else 0
    while state.epoch < epochs and not state.stopped:
        loss = _train_epoch(model, optimizer, batches, loss_fn, state, callbacks=callbacks, progress=progress,
                            decay_steps=decay)
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
        has_prior = batch.buckets is not None and model.trend_weight is not None
        bias = model.item_bias  # (n_items,) or None
        if loss == "softmax":
            return _softmax_step(model, batch, u, has_prior)
        pos = (u * model.encode_items(batch.items)).sum(dim=1) * scale  # (b,)
        if has_prior:
            pos = pos + _diag_prior(model, batch.buckets, batch.items[:, None])[:, 0]  # type: ignore[arg-type]
        if bias is not None:
            pos = pos + bias[batch.items]
        neg = None
        if batch.negatives.numel():
            b, n = batch.negatives.shape
            nv = model.encode_items(batch.negatives.reshape(-1)).reshape(b, n, -1)  # (b, n, d)
            neg = torch.einsum("bd,bnd->bn", u, nv) * scale  # (b, n)
            if has_prior:
                neg = neg + _diag_prior(model, batch.buckets, batch.negatives)  # type: ignore[arg-type]
            if bias is not None:
                neg = neg + bias[batch.negatives]
        if loss == "bpr":
            if neg is None:
                raise GeotowerError("train.loss=\"bpr\" needs train.n_negatives >= 1")
            return bpr_loss(pos, neg, batch.weights, batch.neg_valid)
        return bce_loss(pos, batch.labels, batch.weights, neg, batch.neg_valid)

    return step


def _diag_prior(model: TwoTower, buckets: Tensor, items: Tensor) -> Tensor:
    """(b, n) trend prior of each row's own candidates ``items`` (b, n) in the row's time bucket."""
    assert model.trend_weight is not None
    return model.trend_table[buckets[:, None], items] @ model.trend_weight


def _softmax_step(model: TwoTower, batch: Batch, u: Tensor, has_prior: bool) -> Tensor:
    """Softmax over the batch's columns: the whole catalogue (``batch.full``) or the distinct in-batch items and
    negatives (each standing for its copies: ``BatchSampler._column_log_q``)."""
    items = batch.unique_items
    assert items is not None and batch.target is not None  # set on every softmax batch
    v = model.encode_items(items)  # (u, d)
    logits = u @ v.T * model.score_scale  # (b, u)
    if has_prior:
        logits = logits + model.trend_bias(batch.buckets, None if batch.full else items)  # type: ignore[arg-type, operator]
    if model.item_bias is not None:
        logits = logits + model.item_bias[items][None, :]
    return softmax_loss(logits, batch.target, batch.weights, batch.log_q, batch.invalid, batch.target_log_q)
