"""Data-parallel training on torch.distributed: every rank computes its share of each GLOBAL batch.

Why this shape: every rank runs the same seeded :class:`~geotower.train.batches.BatchSampler`, so all ranks build
the same global batch (same rows, same negatives, same softmax columns). Rank ``r`` of ``W`` then keeps the rows
``r, r + W, ...`` of it (:func:`shard_rows`): its users are encoded and its per-row losses computed against the
global batch's columns, exactly as in one process. The shard's weighted-mean loss is rescaled by its share of the
batch's weight (times ``W``), so DistributedDataParallel's gradient average is the gradient of the single-process
loss. The global batch, and so the result, do not depend on ``W`` (up to float summation order).

What is replicated: the model (embedding tables, towers), the catalogue and the sampler's data on every rank; the
batch's users and softmax columns are encoded on every rank (so random ID dropout draws the single-process masks).
What is sharded: the rows of the logits (rows x columns, the dominant cost with the exact softmax over the
catalogue), their losses and backward. Rank 0 alone validates (the metrics are broadcast, so early stopping agrees),
writes checkpoints and the run folder; every rank resumes from rank 0's checkpoint.

Launch: ``geotower train ... --nproc N`` re-executes itself under ``torchrun --standalone`` (gloo on CPU, NCCL on
CUDA); several machines run ``torchrun --nnodes M --nproc-per-node N --rdzv-backend c10d --rdzv-endpoint HOST:PORT
--no-python geotower train ...`` on each (see docs/scale.md).
"""

from __future__ import annotations

import copy
import dataclasses
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from geotower.errors import ConfigError
from geotower.train.batches import Batch


@dataclass(frozen=True)
class Dist:
    """This process's place in the job: ``rank`` of ``world`` (world 1 = plain single-process training)."""

    rank: int = 0
    world: int = 1

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE = Dist()
ENTRY = "import sys; from geotower.cli import app; sys.argv[0] = 'geotower'; app()"  # what torchrun runs per rank


def resolve_device(name: str) -> torch.device:
    """``train.device``: "auto" = cuda when available, else cpu; "cuda" without a GPU is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"train.device={name!r} but torch sees no CUDA GPU (this torch build: "
                              f"{torch.__version__}); use \"auto\" or \"cpu\"")
        return torch.device(name)
    raise ConfigError(f"train.device: expected \"auto\", \"cpu\" or \"cuda\", got {name!r}")


def init_from_env(device: torch.device) -> Dist:
    """Join the process group torchrun set up (``RANK``/``WORLD_SIZE`` in the environment), else single process.

    The backend is gloo on CPU and NCCL on CUDA; a CUDA rank uses the GPU ``LOCAL_RANK``.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return SINGLE
    import torch.distributed as td

    if not td.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        td.init_process_group(backend)
    return Dist(td.get_rank(), td.get_world_size())


def barrier(dist: Dist) -> None:
    """Wait for every rank (e.g. while rank 0 sets up or writes the run folder); nothing in a single process."""
    if dist.enabled:
        import torch.distributed as td

        td.barrier()


def relaunch_under_torchrun(nproc: int, argv: list[str]) -> int:
    """Run this CLI command again as ``nproc`` local processes under torchrun (``--standalone`` rendezvous).

    ``argv`` is the command line without ``--nproc``; returns torchrun's exit status (non-zero if any rank failed:
    torchrun then stops the others, and ``--resume`` continues from rank 0's last checkpoint).
    """
    from torch.distributed.run import main as torchrun

    args = ["--standalone", "--nproc-per-node", str(nproc), "--no-python", sys.executable, "-c", ENTRY, *argv]
    try:
        torchrun(args)
    except SystemExit as exc:  # torchrun exits through sys.exit / raises ChildFailedError
        return int(exc.code or 0)
    except Exception as exc:  # torch.distributed.elastic.multiprocessing.errors.ChildFailedError
        print(f"distributed training failed: {exc}", file=sys.stderr)
        return 1
    return 0


def without_option(argv: list[str], name: str) -> list[str]:
    """``argv`` without ``name VALUE`` / ``name=VALUE`` (the relaunched ranks must not relaunch again)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == name:
            skip = True
        elif not arg.startswith(f"{name}="):
            out.append(arg)
    return out


def shard_rows(batch: Batch, dist: Dist) -> tuple[Batch, Tensor]:
    """Rank ``dist.rank``'s rows of a global batch; the softmax columns stay global. Returns (shard, row indices).

    Per-row fields are indexed (a softmax target is each kept row's global column). The history stays global:
    users are encoded by :class:`_ShardLoss`.
    """
    b = len(batch.users)
    rows = torch.arange(dist.rank, b, dist.world, device=batch.users.device)
    per_row = {f: getattr(batch, f)[rows] for f in ("users", "items", "labels", "weights", "buckets",
                                                    "neg_valid", "invalid", "target", "target_log_q")
               if getattr(batch, f) is not None and getattr(batch, f).numel()}
    if batch.negatives.dim() == 2:  # bce/bpr: (b, n) negatives per row; softmax: a shared (m,) pool
        per_row["negatives"] = batch.negatives[rows]
    return dataclasses.replace(batch, **per_row), rows


class _ShardLoss(nn.Module):
    """The loss of one rank's shard as a module, so DistributedDataParallel wraps its forward and backward."""

    def __init__(self, model: nn.Module, loss_fn: Callable[[nn.Module, Any], Tensor], dist: Dist) -> None:
        super().__init__()
        self.model, self.loss_fn, self.dist = model, loss_fn, dist

    def forward(self, batch: Batch) -> Tensor:
        shard, rows = shard_rows(batch, self.dist)
        share = shard.weights.sum() / batch.weights.sum().clamp_min(1e-12)  # this shard's part of the mean
        return self.loss_fn(_rows_of(self.model, batch, rows), shard) * share * self.dist.world


def _rows_of(model: nn.Module, batch: Batch, rows: Tensor) -> nn.Module:
    """``model`` (same parameters) whose user encoding runs over the GLOBAL batch and returns ``rows`` of it.

    Why: the user tower's random ID dropout draws one mask over the rows it encodes; encoding every row on every
    rank (the cheap part: the logits against the columns, per kept row, are what is sharded) draws exactly the
    masks of a single process, so the result does not depend on the number of ranks.
    """
    view = copy.copy(model)  # shallow: shares parameters, buffers and modules

    def encode_known_users(_history: Any, _users: Tensor) -> Tensor:
        users: Tensor = model.encode_known_users(batch.history, batch.users)  # type: ignore[operator]  # a TwoTower
        return users[rows]

    view.encode_known_users = encode_known_users  # type: ignore[assignment]
    return view


def distributed_loss(model: nn.Module, loss_fn: Callable[[nn.Module, Any], Tensor], dist: Dist
                     ) -> Callable[[nn.Module, Any], Tensor]:
    """``loss_fn`` for :func:`~geotower.train.loop.fit` that trains ``model`` data-parallel across ``dist``.

    Single process: ``loss_fn`` itself. Otherwise the returned function ignores the model ``fit`` passes (the same
    object, wrapped here once in DistributedDataParallel, which all-reduces the gradients in ``backward``).
    """
    if not dist.enabled:
        return loss_fn
    from torch.nn.parallel import DistributedDataParallel

    ddp = DistributedDataParallel(_ShardLoss(model, loss_fn, dist), find_unused_parameters=True)

    def step(_model: nn.Module, batch: Batch) -> Tensor:
        return ddp(batch)  # type: ignore[no-any-return]

    return step


def agreed(validate: Callable[[nn.Module], dict[str, float]] | None, dist: Dist
           ) -> Callable[[nn.Module], dict[str, float]] | None:
    """Validation run by rank 0 only; its metrics are broadcast so every rank takes the same early-stopping step."""
    if validate is None or not dist.enabled:
        return validate
    import torch.distributed as td

    def run(model: nn.Module) -> dict[str, float]:
        box: list[Any] = [validate(model) if dist.is_main else None]
        td.broadcast_object_list(box, src=0)
        return dict(box[0])

    return run
