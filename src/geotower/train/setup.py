"""What every training stage reads: :class:`TrainSetup`, built once per run, and the seeded towers built from it.

A run trains one model with early stopping, then (refit, ensemble members) more models from the same setup for a
fixed epoch count; all of them start from :func:`new_model` so the only differences are the data and the seed.
"""

from __future__ import annotations

import copy
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from geotower.config import RunConfig
from geotower.ingest.dataset import Dataset
from geotower.ingest.protocol import IdIndex, SplitRows
from geotower.model.encoders import TableEncoder
from geotower.model.spec import TowerSpec
from geotower.model.towers import TwoTower
from geotower.train.batches import BatchSampler, TrainData
from geotower.train.distributed import SINGLE, Dist, distributed_loss, resolve_device
from geotower.train.loop import LoopState, fit, two_tower_loss
from geotower.train.optim import Adam, MixedAdam, OptimizerLike
from geotower.train.sampling import Neighbours, make_sampler

__all__ = ["TREND_LR_FACTOR", "EpochBudget", "TrainSetup", "FollowerPool", "SnapshotKeeper", "extra_epochs", "member",
           "new_model", "new_optimizer", "runs_together", "side_by_side", "snapshot_members", "sparse_item_ids",
           "sparse_user_ids", "train_fixed"]

T = TypeVar("T")

# The trend weights and item biases are scalars on a log-count scale; at the towers' learning rate they would move
# too little in the ~100 steps small data sets train for, so they learn this much faster (without weight decay).
TREND_LR_FACTOR = 10.0


@dataclass(frozen=True)
class TrainSetup:
    """The dataset, its split, the id index, the fitted encoders, the encoded inputs and the tower spec.

    ``item_dense`` (n_items, d_i) float32 and ``item_cells`` (n_items, levels) int64 are every item's encoded
    inputs; ``user_dense`` (n_users, d_u) the indexed users' encoded features (zeros for users without a row).
    """

    ds: Dataset
    rows: SplitRows
    index: IdIndex
    item_enc: TableEncoder
    user_enc: TableEncoder | None
    item_dense: np.ndarray
    item_cells: np.ndarray
    user_dense: np.ndarray
    spec: TowerSpec
    neighbours: Neighbours | None


def sparse_item_ids(n_items: int, cfg: RunConfig) -> bool:
    """Sparse gradients for the item-side tables (item IDs, grid cells) from ``train.sparse_ids_min_items`` items
    on, in one process, as :func:`sparse_user_ids`."""
    return _single_process() and 0 < cfg.train.sparse_ids_min_items <= n_items


def sparse_user_ids(n_users: int, cfg: RunConfig) -> bool:
    """Sparse user-ID gradients (:mod:`geotower.train.optim`) from ``train.sparse_ids_min_users`` users on, in one
    process (DDP all-reduces dense gradients)."""
    return _single_process() and cfg.model.use_user_id and 0 < cfg.train.sparse_ids_min_users <= n_users


def _single_process() -> bool:
    """Sparse gradients need one process: DDP all-reduces dense gradients."""
    return int(os.environ.get("WORLD_SIZE", "1")) <= 1


def new_model(setup: TrainSetup, data: TrainData, cfg: RunConfig, trend_weight: torch.Tensor | None = None,
              seed: int | None = None) -> tuple[TwoTower, OptimizerLike]:
    """Seeded towers for ``data`` (trained-item mask, trend features) and their Adam optimizer.

    Given ``trend_weight`` (calibrated on validation), the trend weights are fixed instead of learned.
    """
    known = np.zeros(len(setup.item_dense), dtype=np.float32)
    known[data.hist_items.numpy()] = 1.0
    torch.manual_seed(cfg.seed if seed is None else seed)
    model = TwoTower(setup.spec, torch.from_numpy(setup.item_dense), torch.from_numpy(setup.item_cells),
                     torch.from_numpy(setup.user_dense), torch.from_numpy(known))
    if model.trend_weight is not None and data.trend_now is not None:
        model.set_trend(data.trend_table, data.trend_now)
    if model.trend_weight is not None and trend_weight is not None:
        model.trend_weight.data.copy_(trend_weight)
        model.trend_weight.requires_grad_(False)
    if model.item_bias is not None:  # start from the smoothed log-popularity; training refines it
        counts = torch.bincount(data.items, minlength=setup.spec.n_items).float()
        model.item_bias.data.copy_(torch.log1p(counts) - torch.log1p(counts).mean())
    model.to(resolve_device(cfg.train.device))  # weights and buffers (features, trend table) where training runs
    return model, new_optimizer(model, cfg)


def new_optimizer(model: TwoTower, cfg: RunConfig) -> OptimizerLike:
    """Adam for ``model``: the trend weights and item biases learn ``TREND_LR_FACTOR`` times faster, sparse ID
    tables (``spec.sparse_*_ids``) get the lazy sparse half of :class:`MixedAdam`."""
    t = cfg.train
    fast = [p for p in (model.trend_weight, model.item_bias) if p is not None and p.requires_grad]
    sparse = [model.user_id.weight] if model.user_id is not None and model.spec.sparse_user_ids else []
    if model.spec.sparse_item_ids:
        sparse += [e.weight for e in model.cell_emb] + ([model.item_id.weight] if model.item_id is not None else [])
    rest = [p for p in model.parameters() if all(p is not f for f in [*fast, *sparse])]
    groups: list[dict[str, Any]] = [{"params": rest}]
    if fast:
        groups.append({"params": fast, "lr": t.lr * TREND_LR_FACTOR, "weight_decay": 0.0})
    adam = Adam(groups, lr=t.lr, weight_decay=t.weight_decay)  # torch's fused kernel: one CPU kernel per tensor
    # instead of ~10 (Adam was ~26 % of a batch-512 step, docs/quality.md), without torch.optim's dynamo import
    return MixedAdam(adam, sparse, lr=t.lr) if sparse else adam


def runs_together(n_jobs: int, dist: Dist = SINGLE) -> bool:
    """Does :func:`side_by_side` run ``n_jobs`` jobs in threads (torch single-threaded, one process, 2+ cores)?"""
    return n_jobs > 1 and not dist.enabled and torch.get_num_threads() == 1 and (os.cpu_count() or 1) > 1


def side_by_side(jobs: list[Callable[[bool], T]], progress: bool, dist: Dist = SINGLE) -> list[T]:
    """Run ``job(show_progress)`` for every job: side by side when torch runs single-threaded in one process on a
    machine with more than one core, else one after the other, in order. Side by side, the first job runs on the
    calling thread (so Ctrl-C reaches it) and shows the progress; each other job gets a thread of its own, even
    beyond the cores (refit models waiting on early stopping, :class:`EpochBudget`, need theirs). Every job must
    draw from its own generators (see :func:`member`)."""
    if not runs_together(len(jobs), dist):
        return [job(progress) for job in jobs]
    with ThreadPoolExecutor(max_workers=len(jobs) - 1, thread_name_prefix="geotower-member") as pool:
        rest = [pool.submit(job, False) for job in jobs[1:]]
        first = jobs[0](progress)
        return [first, *[f.result() for f in rest]]


def member(setup: TrainSetup, data: TrainData, cfg: RunConfig, seed: int, trend_weight: torch.Tensor | None = None
           ) -> tuple[TwoTower, OptimizerLike, BatchSampler]:
    """A seeded model with its optimizer and a sampler of ``data``, drawing from generators of its own (ID dropout,
    batches), so that members trained side by side in threads do not share the global RNG."""
    model, optimizer = new_model(setup, data, cfg, trend_weight, seed)
    model.dropout_generator = torch.Generator(model.item_known.device).manual_seed(seed)
    return model, optimizer, make_sampler(data, cfg, torch.Generator().manual_seed(seed),
                                          (setup.item_dense, setup.item_cells))


def extra_epochs(cfg: RunConfig) -> int:
    """How many epochs past the chosen count the refit models train for their snapshots (``model.snapshots``)."""
    return cfg.model.snapshots // 2


class SnapshotKeeper:
    """A :func:`~geotower.train.loop.fit` callback that keeps copies of the weights after the last ``keep`` epochs.

    Why: consecutive epochs of one refit trajectory, averaged as ensemble members, cost no training beyond the
    trajectory itself (``model.snapshots``). The copies are taken after every epoch (the refit models do not know
    which epoch will be their last while early stopping runs) and only the last ``keep`` are held.
    """

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.kept: list[dict[str, torch.Tensor]] = []

    def on_step(self, state: LoopState, loss: float) -> None:
        pass

    def on_epoch_end(self, state: LoopState, model: nn.Module) -> None:
        if self.keep > 1:
            self.kept.append({k: v.detach().clone() for k, v in model.state_dict().items()})
            del self.kept[:-self.keep]

    def on_train_end(self, state: LoopState) -> None:
        pass


def snapshot_members(model: TwoTower, kept: list[dict[str, torch.Tensor]]) -> list[TwoTower]:
    """``model`` after each kept epoch, oldest first; the last is ``model`` itself (its final weights). The copies
    share its buffers (features, trend tables), which training does not change."""
    out = []
    for weights in kept[:-1]:
        twin = copy.deepcopy(model, memo={id(b): b for b in model.buffers()})
        twin.load_state_dict(weights)
        twin.eval()
        out.append(twin)
    return [*out, model]


def train_fixed(setup: TrainSetup, data: TrainData, cfg: RunConfig, epochs: int, *, seeds: list[int],
                trend_weight: torch.Tensor | None = None, progress: bool = True, dist: Dist = SINGLE
                ) -> list[TwoTower]:
    """Train one model per seed on ``data`` for the epoch count early stopping chose (no validation, no checkpoints).

    Used for the refit on all training rows (early stopping needs rows the model does not see; without a refit
    those rows, with timestamps the most recent ones, would never shape the weights, and users whose positives all
    fell there would keep untrained IDs) and for the extra members of an ensemble (``model.members``). Each model
    trains ``epochs`` plus :func:`extra_epochs` and stands for its ``model.snapshots`` last epochs (seed order, each
    seed's snapshots oldest first).

    The models are built one after the other (their initialisation draws from the seeded global RNG), then trained
    side by side, one thread each, when torch runs single-threaded and there is one process: each model has its
    own sampler and dropout generator, so the results are those of training them one by one (deterministic, and a
    resumed run repeats them exactly), in the wall time of about one on a machine with a core per model.
    """
    jobs = [member(setup, data, cfg, seed, trend_weight) for seed in seeds]
    total = epochs + extra_epochs(cfg)
    done = side_by_side([_fit_job(j, cfg, total, dist, cfg.train.lr_decay) for j in jobs], progress, dist)
    return [m for models in done for m in models]


def _fit_job(job: tuple[TwoTower, OptimizerLike, Any], cfg: RunConfig, epochs: int, dist: Dist, lr_decay: bool
             ) -> Callable[[bool], list[TwoTower]]:
    """``run(show_progress)``: train ``job``'s model ``epochs`` epochs (no validation); its snapshot members."""
    model, optimizer, sampler = job

    def run(show: bool) -> list[TwoTower]:
        keeper = SnapshotKeeper(cfg.model.snapshots)
        fit(model, optimizer, sampler, distributed_loss(model, two_tower_loss(cfg.train.loss), dist), epochs,
            callbacks=[keeper], progress=show, lr_decay=lr_decay)
        return snapshot_members(model, keeper.kept)

    return run


class EpochBudget:
    """How many epochs the refit models may train so far, for refit models that train alongside early stopping.

    Early stopping raises the budget to its best epoch after every epoch and closes it when it ends (the best epoch
    only moves forward, so a refit model never trains an epoch too many); a refit model that is ahead waits. Why:
    the refit models train from scratch on other rows, independently of the early-stopped model, so on a machine
    with a core to spare they need not wait for early stopping to end; their weights are those of training them
    afterwards for the chosen epoch count (without ``train.lr_decay``, whose schedule needs the count up front).
    ``extra`` epochs past early stopping's count are granted on top, for snapshot members (:func:`extra_epochs`).
    """

    def __init__(self, start: int = 0, extra: int = 0) -> None:
        self._cond = threading.Condition()
        self._epochs, self._closed, self._failed = start + extra, False, False
        self._extra = extra  # epochs past early stopping's count the refit models train (extra_epochs)
        self._listeners: list[Callable[[tuple[int, bool, bool]], None]] = []

    def listen(self, send: Callable[[tuple[int, bool, bool]], None]) -> None:
        """Call ``send((epochs, closed, failed))`` now and on every change (refit models in other processes)."""
        with self._cond:
            self._listeners.append(send)
            send((self._epochs, self._closed, self._failed))

    def _changed(self) -> None:
        for send in self._listeners:
            try:
                send((self._epochs, self._closed, self._failed))
            except OSError:  # a listener that has gone (its process ended) needs no more budget
                pass
        self._cond.notify_all()

    @property
    def failed(self) -> bool:
        return self._failed

    def raise_to(self, epochs: int) -> None:
        with self._cond:
            self._epochs = max(self._epochs, epochs)
            self._changed()

    def close(self, epochs: int | None) -> None:
        """Early stopping ended with ``epochs`` the final budget; None: it failed, the refit models stop."""
        with self._cond:
            self._epochs = self._epochs if epochs is None else epochs
            self._closed, self._failed = True, epochs is None
            self._changed()

    def after(self, done: int) -> int | None:
        """Block until more than ``done`` epochs may be trained: the budget then, or None once there is no more."""
        with self._cond:
            self._cond.wait_for(lambda: self._closed or self._epochs > done)
            return None if self._failed or self._epochs <= done else self._epochs

    # the Callback hooks of geotower.train.loop.fit, for the early-stopping run
    def on_step(self, state: LoopState, loss: float) -> None:
        pass

    def on_epoch_end(self, state: LoopState, model: nn.Module) -> None:
        self.raise_to(state.best_epoch + self._extra)

    def on_train_end(self, state: LoopState) -> None:
        self.close((state.best_epoch if state.best_epoch > 0 else state.epoch) + self._extra)


class FollowerPool:
    """Trains the refit models (``jobs``) epoch by epoch as far as ``budget`` allows, in whichever threads call
    :meth:`work`: each call takes the least-trained model no other thread holds, trains it one epoch, and repeats.

    Why: on 2 cores, early stopping and two refit models in three threads made every epoch ~2x slower than alone
    (time slicing and contention). Here one spare-core thread alternates the refit models, and the early-stopping
    thread joins in once it ends, so both cores train until the last epoch. Each model keeps its own sampler and
    generators, so which thread trains which epoch does not change its weights.
    """

    def __init__(self, jobs: list[tuple[TwoTower, OptimizerLike, Any]], cfg: RunConfig, budget: EpochBudget,
                 dist: Dist = SINGLE, decay_epochs: int = 0) -> None:
        self._jobs, self._budget, self._decay = jobs, budget, decay_epochs  # decay: over this many epochs (0: none)
        self._loss = [distributed_loss(model, two_tower_loss(cfg.train.loss), dist) for model, _, _ in jobs]
        self._states = [LoopState() for _ in jobs]
        self._keepers = [SnapshotKeeper(cfg.model.snapshots) for _ in jobs]
        self._busy = [False] * len(jobs)
        self._lock = threading.Lock()

    @property
    def models(self) -> list[TwoTower]:
        return [model for model, _, _ in self._jobs]

    @property
    def kept(self) -> list[list[dict[str, torch.Tensor]]]:
        """Each model's kept snapshot weights (:class:`SnapshotKeeper`)."""
        return [keeper.kept for keeper in self._keepers]

    def members(self) -> list[TwoTower]:
        """The ensemble members the models stand for (:func:`snapshot_members`), in model order."""
        return [m for (model, _, _), kept in zip(self._jobs, self.kept, strict=True)
                for m in snapshot_members(model, kept)]

    def threads(self) -> int:
        """How many threads should work besides early stopping's: one per spare core, at most one per model."""
        return min(len(self._jobs), max(1, (os.cpu_count() or 1) - 1))

    def _claim(self, allowed: int) -> int | None:
        with self._lock:
            free = [k for k, s in enumerate(self._states) if not self._busy[k] and s.epoch < allowed]
            if not free:
                return None
            k = min(free, key=lambda k: self._states[k].epoch)
            self._busy[k] = True
            return k

    def work(self, show: bool) -> list[TwoTower]:
        """Train epochs until every model has the final budget's, or the rest are held by other threads."""
        while True:
            with self._lock:
                idle = [s.epoch for k, s in enumerate(self._states) if not self._busy[k]]
            if not idle or (allowed := self._budget.after(min(idle))) is None:
                return self.models
            k = self._claim(allowed)
            if k is None:  # another thread took it meanwhile: look again
                continue
            (model, optimizer, sampler), state = self._jobs[k], self._states[k]
            try:  # fit continues ``state`` in place
                fit(model, optimizer, sampler, self._loss[k], state.epoch + 1, callbacks=[self._keepers[k]],
                    state=state, progress=show, lr_decay=self._decay > 0, decay_epochs=self._decay)
            finally:
                with self._lock:
                    self._busy[k] = False
