"""Refit models trained in forked processes beside early stopping (Linux, CPU, one training process).

Why: PyTorch holds the GIL while it runs most forward ops, so threads that train side by side wait for each other.
On 2 cores, early stopping and the refit models in threads ran every epoch ~35 % slower than one training alone;
two training processes ran within ~5 % of it (docs/quality.md). A forked child inherits what it needs (data,
encoders, its seeded model, optimizer and sampler) without copying or pickling, follows early stopping's epoch
budget through a pipe, and hands its weights back in a safetensors file. It draws from the same generators as in a
thread, so the run's result does not depend on where the refit models trained (test).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import threading
import warnings
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import torch

from geotower import artifacts
from geotower.config import RunConfig
from geotower.errors import GeotowerError, GeotowerWarning
from geotower.model.towers import TwoTower
from geotower.train.distributed import Dist
from geotower.train.optim import OptimizerLike
from geotower.train.setup import EpochBudget, FollowerPool, snapshot_members

__all__ = ["CHILD_NICENESS", "ForkedFollowers", "can_fork", "fit_in_processes", "fits_in_memory"]

Job = tuple[TwoTower, OptimizerLike, Any]
CHILD_NICENESS = 5  # added to the refit processes' niceness (see ForkedFollowers)


def can_fork(dist: Dist, device: torch.device, children: int) -> bool:
    """Refit models may train in ``children`` forked processes: Linux (fork is unsafe on macOS, absent on Windows),
    the CPU (CUDA does not survive a fork), one process (DDP ranks train their own), torch single-threaded, a core to
    spare (else the processes would only take turns), and memory for the worst case (:func:`_fits`)."""
    return (sys.platform.startswith("linux") and device.type == "cpu" and not dist.enabled
            and torch.get_num_threads() == 1 and (os.cpu_count() or 1) > 1 and fits_in_memory(children))


def fits_in_memory(children: int) -> bool:
    """Would ``children`` full copies of this process, and this process, fit in half the memory there is?

    Why: a child shares the parent's pages only until either writes them, so a large run could need up to a copy of
    the parent per child. At full Yelp size (2M users) the refit processes held 16.2-16.6 GB in all (PSS), about as
    much as the same run in threads, and the box had no room for worse (docs/scale.md). There the parent held ~6 GB,
    so such runs train their refit models in threads, after early stopping (``pipeline.train``).
    """
    try:
        page = os.sysconf("SC_PAGE_SIZE")
        with open("/proc/self/statm") as fh:
            rss = int(fh.read().split()[1]) * page
    except (OSError, ValueError, IndexError, AttributeError):  # no /proc (macOS, Windows): nothing to go by
        return True
    total = os.sysconf("SC_PHYS_PAGES") * page
    try:  # a container's own limit (cgroup v2), when it has one
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        total = min(total, int(limit)) if limit.isdigit() else total
    except OSError:
        pass
    return (1 + children) * rss <= total // 2


class ForkedFollowers:
    """One forked child per refit model, started now; :meth:`join` waits for them and loads their weights.

    The children run at a lower priority (``CHILD_NICENESS``): early stopping sets the pace (the children may not
    train past its best epoch so far), so on 2 cores it keeps a core while the children share the other, and they
    take both once it ends. At equal priority the three took turns on the two cores and early stopping, slowed
    down, held the children back (measured 13.0 s against 11.7 s on Singapore, docs/quality.md).

    Start it before any other thread exists (the TensorBoard writer, batch prefetching): a child gets a copy of the
    parent's memory but only the thread that forked, so a lock held by another thread would stay locked in it.
    """

    def __init__(self, jobs: list[Job], cfg: RunConfig, budget: EpochBudget, folder: Path, decay_epochs: int = 0
                 ) -> None:
        ctx = mp.get_context("fork")
        self._jobs, self._paths = jobs, [folder / f"refit_{k}.safetensors" for k in range(len(jobs))]
        self._procs: list[Any] = []
        try:
            for k, job in enumerate(jobs):
                receive, send = ctx.Pipe(duplex=False)
                proc = ctx.Process(target=_child, args=(job, cfg, receive, self._paths[k], decay_epochs),
                                   name=f"geotower-refit-{k}", daemon=True)
                proc.start()
                self._procs.append(proc)
                receive.close()  # the child's end
                budget.listen(send.send)
        except BaseException:  # e.g. fork failed for lack of memory: no child is left behind
            self.stop()
            raise
        # each child trains its own copy of its model's weights: free the parent's (a full-Yelp refit model's
        # tables are ~1 GB) until join refills them
        self._nbytes = [[p.untyped_storage().nbytes() for p in model.parameters()] for model, _, _ in jobs]
        for model, _, _ in jobs:
            for p in model.parameters():
                p.untyped_storage().resize_(0)

    @classmethod
    def start(cls, jobs: list[Job], cfg: RunConfig, budget: EpochBudget, folder: Path, decay_epochs: int = 0
              ) -> ForkedFollowers | None:
        """:class:`ForkedFollowers`, or None with a warning when the system cannot fork (the caller then trains the
        refit models in threads). ``decay_epochs``: the learning rate decays to zero over that many epochs (0: it
        stays constant)."""
        try:
            return cls(jobs, cfg, budget, folder, decay_epochs)
        except OSError as exc:
            warnings.warn(f"could not start the refit processes ({exc}); training the refit models in threads",
                          GeotowerWarning, stacklevel=2)
            return None

    def join(self) -> list[TwoTower]:
        """The members the refit models stand for (:func:`~geotower.train.setup.snapshot_members`, in model order),
        with the weights their processes trained; raises if one of them failed."""
        done: list[TwoTower] = []
        for k, (proc, path, (model, _, _)) in enumerate(zip(self._procs, self._paths, self._jobs, strict=True)):
            proc.join()
            if proc.exitcode != 0 or not path.exists():
                raise GeotowerError(f"training a refit model failed in its process {proc.name} (exit code "
                                    f"{proc.exitcode}); its error is printed above")
            kept = _snapshots(artifacts.load_arrays(path))
            for p, nbytes in zip(model.parameters(), self._nbytes[k], strict=True):
                p.untyped_storage().resize_(nbytes)
            model.load_state_dict(kept[-1])
            model.eval()  # as training leaves it (this copy never trained: it would still drop IDs at random)
            done += snapshot_members(model, kept)
        return done

    def stop(self) -> None:
        """End the children (early stopping failed or was interrupted)."""
        for proc in self._procs:
            if proc.is_alive():
                proc.terminate()
            proc.join()


def _child(job: Job, cfg: RunConfig, receive: Connection, path: Path, decay_epochs: int) -> None:
    """In the forked process: follow the budget the parent sends, train, and write the weights."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which ends its children (stop)
    os.nice(CHILD_NICENESS)
    budget = EpochBudget()

    def relay() -> None:  # the parent's budget, message by message; a closed pipe without an end = it failed
        try:
            while True:
                epochs, closed, failed = receive.recv()
                if closed:
                    budget.close(None if failed else epochs)
                    return
                budget.raise_to(epochs)
        except EOFError:
            budget.close(None)

    threading.Thread(target=relay, name="geotower-budget", daemon=True).start()
    pool = FollowerPool([job], cfg, budget, decay_epochs=decay_epochs)
    model = pool.work(False)[0]
    if not budget.failed:  # the kept snapshots, oldest first; the last (or only) one is the final weights
        kept = pool.kept[0] or [model.state_dict()]
        artifacts.save_arrays(path, {f"s{i}.{k}": v.detach().cpu().numpy()
                                     for i, weights in enumerate(kept) for k, v in weights.items()})


def _snapshots(arrays: dict[str, Any]) -> list[dict[str, torch.Tensor]]:
    """The state dicts a child wrote (``s<i>.<name>`` keys), in snapshot order."""
    out: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in arrays.items():
        index, name = key.split(".", 1)
        out.setdefault(int(index[1:]), {})[name] = torch.from_numpy(value)
    return [out[i] for i in sorted(out)]


def fit_in_processes(jobs: list[Job], cfg: RunConfig, epochs: int, folder: Path, progress: bool
                     ) -> list[TwoTower] | None:
    """Train every job ``epochs`` epochs (``train.lr_decay`` as configured): the first here, the others in forked
    children; their members (:func:`~geotower.train.setup.snapshot_members`) in job order, or None when the
    system could not fork (the caller then trains them in threads).

    Why: a fixed budget trains its members from the start, side by side; in threads they wait on each other for
    the GIL (see the module docstring), in processes each keeps a core. Their weights are those of training them
    one after the other: each draws from its own generators.
    """
    budget = EpochBudget()
    budget.close(epochs)
    decay = epochs if cfg.train.lr_decay else 0
    if len(jobs) >= (os.cpu_count() or 1):  # every core trains: no batch-building threads besides
        for _, _, sampler in jobs:
            sampler.prefetch = False
    children = ForkedFollowers.start(jobs[1:], cfg, budget, folder, decay)
    if children is None:
        return None
    try:
        here = FollowerPool(jobs[:1], cfg, budget, decay_epochs=decay)
        here.work(progress)
        return [*here.members(), *children.join()]
    finally:
        children.stop()
