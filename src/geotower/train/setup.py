"""What every training stage reads: :class:`TrainSetup`, built once per run, and the seeded towers built from it.

A run trains one model with early stopping, then (refit, ensemble members) more models from the same setup for a
fixed epoch count; all of them start from :func:`new_model` so the only differences are the data and the seed.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from geotower.config import RunConfig
from geotower.ingest.dataset import Dataset
from geotower.ingest.protocol import IdIndex, SplitRows
from geotower.model.encoders import TableEncoder
from geotower.model.spec import TowerSpec
from geotower.model.towers import TwoTower
from geotower.train.batches import TrainData
from geotower.train.distributed import SINGLE, Dist, distributed_loss, resolve_device
from geotower.train.loop import fit, two_tower_loss
from geotower.train.optim import Adam, MixedAdam, OptimizerLike
from geotower.train.sampling import Neighbours, make_sampler

__all__ = ["TREND_LR_FACTOR", "TrainSetup", "new_model", "sparse_item_ids", "sparse_user_ids", "train_fixed"]

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
    return model, (MixedAdam(adam, sparse, lr=t.lr) if sparse else adam)


def train_fixed(setup: TrainSetup, data: TrainData, cfg: RunConfig, epochs: int, *, seeds: list[int],
                trend_weight: torch.Tensor | None = None, progress: bool = True, dist: Dist = SINGLE
                ) -> list[TwoTower]:
    """Train one model per seed on ``data`` for the epoch count early stopping chose (no validation, no checkpoints).

    Used for the refit on all training rows (early stopping needs rows the model does not see; without a refit
    those rows, with timestamps the most recent ones, would never shape the weights, and users whose positives all
    fell there would keep untrained IDs) and for the extra members of an ensemble (``model.members``).

    The models are built one after the other (their initialisation draws from the seeded global RNG), then trained
    side by side, one thread each, when torch runs single-threaded and there is one process: each model has its
    own sampler and dropout generator, so the results are those of training them one by one (deterministic, and a
    resumed run repeats them exactly), in the wall time of about one on a machine with a core per model.
    """
    jobs = []
    for seed in seeds:
        model, optimizer = new_model(setup, data, cfg, trend_weight, seed)
        model.dropout_generator = torch.Generator(model.item_known.device).manual_seed(seed)
        sampler = make_sampler(data, cfg, torch.Generator().manual_seed(seed))
        jobs.append((model, optimizer, sampler))

    def run(job: tuple[TwoTower, OptimizerLike, Any], show: bool) -> TwoTower:
        model, optimizer, sampler = job
        fit(model, optimizer, sampler, distributed_loss(model, two_tower_loss(cfg.train.loss), dist), epochs,
            progress=show, lr_decay=cfg.train.lr_decay)
        return model

    side_by_side = len(jobs) > 1 and not dist.enabled and torch.get_num_threads() == 1 and \
        (os.cpu_count() or 1) > 1
    if not side_by_side:
        return [run(job, progress) for job in jobs]
    with ThreadPoolExecutor(max_workers=min(len(jobs), os.cpu_count() or 1),
                            thread_name_prefix="geotower-member") as pool:
        return list(pool.map(run, jobs, [progress] + [False] * (len(jobs) - 1)))
