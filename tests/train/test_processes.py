"""Refit models trained in forked processes: the weights of a refit trained in-process, the budget through a pipe,
and a clear error when a child fails."""

from __future__ import annotations

import multiprocessing.context
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from geotower.config import PRESETS, resolve
from geotower.errors import GeotowerError, GeotowerWarning
from geotower.model.bundle import load_bundle
from geotower.pipeline.train import build_setup, train_run
from geotower.train import processes as P
from geotower.train import setup as S
from geotower.train.sampling import train_data

SETS = [*PRESETS["early_stopping"], "model.embed_dim=8", "model.cell_dim=4", "train.batch_size=16", "train.lr=0.03",
        "features.grid_cells_m=[500.0, 2000.0]", "model.id_dropout=0.3", "train.threads=1"]
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="refit processes are forked on Linux")


def _jobs(cafes: Path, seeds: tuple[int, ...]):  # type: ignore[no-untyped-def]
    cfg = resolve(None, SETS)
    setup = build_setup(cafes, cfg)
    rows = train_data(setup.index, setup.rows.train, cfg, setup.neighbours)
    return cfg, setup, rows, [S.member(setup, rows, cfg, seed) for seed in seeds]


def test_forked_refits_equal_refits_trained_in_process(cafes: Path, tmp_path: Path) -> None:
    """Children that follow a budget raised 1, 2 and closed at 3 return the weights of 3 epochs trained here."""
    torch.set_num_threads(1)
    cfg, setup, rows, jobs = _jobs(cafes, (3, 4))
    budget = S.EpochBudget(1)
    children = P.ForkedFollowers(jobs, cfg, budget, tmp_path)
    assert all(p.untyped_storage().nbytes() == 0 for m, _, _ in jobs for p in m.parameters())  # the children's now
    budget.raise_to(2)
    budget.close(3)
    forked = children.join()
    assert not any(m.training for m in forked)  # in eval mode, as after training here: no ID dropout in exports
    here = S.train_fixed(setup, rows, cfg, 3, seeds=[3, 4], progress=False)
    for a, b in zip(forked, here, strict=True):
        for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
            torch.testing.assert_close(x, y, rtol=0, atol=0, msg=name)


def test_forked_snapshot_members_equal_those_trained_in_process(cafes: Path, tmp_path: Path) -> None:
    """With model.snapshots=3 a child hands back its weights after each of its last three epochs."""
    torch.set_num_threads(1)
    cfg = resolve(None, [*SETS, "model.snapshots=3"])
    setup = build_setup(cafes, cfg)
    rows = train_data(setup.index, setup.rows.train, cfg, setup.neighbours)
    budget = S.EpochBudget(1, extra=S.extra_epochs(cfg))
    children = P.ForkedFollowers([S.member(setup, rows, cfg, 3)], cfg, budget, tmp_path)
    budget.close(2 + S.extra_epochs(cfg))
    forked = children.join()
    here = S.train_fixed(setup, rows, cfg, 2, seeds=[3], progress=False)
    assert len(forked) == len(here) == 3 and not any(m.training for m in forked)
    for a, b in zip(forked, here, strict=True):
        for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
            torch.testing.assert_close(x, y, rtol=0, atol=0, msg=name)


def test_members_trained_in_processes_equal_members_trained_in_threads(cafes: Path, tmp_path: Path) -> None:
    """A fixed budget with a decaying learning rate: the first member trained here epoch by epoch, the second in a
    child, both with the weights of train_fixed's (one fit call each over the whole schedule)."""
    torch.set_num_threads(1)
    cfg = resolve(None, [*SETS, "train.lr_decay=true"])
    setup = build_setup(cafes, cfg)
    rows = train_data(setup.index, setup.rows.train, cfg, setup.neighbours)
    forked = P.fit_in_processes([S.member(setup, rows, cfg, seed) for seed in (3, 4)], cfg, 3, tmp_path, False)
    assert forked is not None and not any(m.training for m in forked)
    here = S.train_fixed(setup, rows, cfg, 3, seeds=[3, 4], progress=False)
    for a, b in zip(forked, here, strict=True):
        for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
            torch.testing.assert_close(x, y, rtol=0, atol=0, msg=name)
    steady = resolve(None, [*SETS, "train.lr_decay=false"])
    constant = S.train_fixed(setup, rows, steady, 3, seeds=[3], progress=False)[0]
    assert not torch.equal(constant.user_id.weight, here[0].user_id.weight)  # the schedule did change the steps


def test_a_failing_child_is_a_clear_error(cafes: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: S.FollowerPool, show: bool) -> list[object]:
        raise RuntimeError("out of memory (simulated)")

    monkeypatch.setattr(S.FollowerPool, "work", broken)  # inherited by the forked child
    cfg, _, _, jobs = _jobs(cafes, (3,))
    budget = S.EpochBudget(1)
    children = P.ForkedFollowers(jobs, cfg, budget, tmp_path)
    budget.close(2)
    with pytest.raises(GeotowerError, match="geotower-refit-0 .*exit code 1"):
        children.join()


def test_failed_early_stopping_stops_the_children(cafes: Path, tmp_path: Path) -> None:
    cfg, _, _, jobs = _jobs(cafes, (3,))
    budget = S.EpochBudget(1)
    children = P.ForkedFollowers(jobs, cfg, budget, tmp_path)
    budget.close(None)
    children.stop()
    with pytest.raises(GeotowerError, match="failed"):
        children.join()
    assert not list(tmp_path.iterdir())  # nothing written


def test_a_failed_fork_falls_back_to_threads(cafes: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the system cannot fork (no memory), the run warns and trains the refit models in threads."""
    def no_fork(self: object) -> None:
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(S.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(multiprocessing.context.ForkProcess, "start", no_fork, raising=False)
    sets = [*SETS, "train.epochs=2", "train.patience=1", "eval.test_fraction=0.2"]
    with pytest.warns(GeotowerWarning, match="could not start the refit processes"):
        threads = train_run(cafes, tmp_path / "a", resolve(None, sets), progress=False)
    monkeypatch.undo()
    forked = train_run(cafes, tmp_path / "b", resolve(None, sets), progress=False)
    assert threads.val_metrics == forked.val_metrics
    np.testing.assert_array_equal(load_bundle(tmp_path / "a").item_emb, load_bundle(tmp_path / "b").item_emb)


def test_refit_processes_only_when_the_worst_case_fits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forking needs room for every child to copy the whole parent: a large run trains its refit models in threads."""
    from geotower.train.distributed import SINGLE

    torch.set_num_threads(1)
    monkeypatch.setattr(P.os, "cpu_count", lambda: 2)
    assert P.can_fork(SINGLE, torch.device("cpu"), 2)  # this test process is small
    pages = P.os.sysconf("SC_PHYS_PAGES")
    monkeypatch.setattr(P.os, "sysconf", lambda name: 4096 if name == "SC_PAGE_SIZE" else pages // 1000)
    assert not P.can_fork(SINGLE, torch.device("cpu"), 2)  # a thousandth of the memory: threads
    assert not P.can_fork(SINGLE, torch.device("meta"), 2)


def test_a_large_run_trains_its_refit_models_after_early_stopping(cafes: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Without room for the refit models beside early stopping, they train after it, with the same result."""
    import geotower.pipeline.train as T

    sets = [*SETS, "train.epochs=2", "train.patience=1", "eval.test_fraction=0.2"]
    beside = train_run(cafes, tmp_path / "a", resolve(None, sets), progress=False)
    followers_built: list[int] = []
    real_member = T.member
    monkeypatch.setattr(T, "fits_in_memory", lambda children: False)
    monkeypatch.setattr(T, "member", lambda *a, **k: followers_built.append(1) or real_member(*a, **k))
    after = train_run(cafes, tmp_path / "b", resolve(None, sets), progress=False)
    assert followers_built == []  # nothing trained alongside early stopping
    assert after.val_metrics == beside.val_metrics
    np.testing.assert_array_equal(load_bundle(tmp_path / "a").item_emb, load_bundle(tmp_path / "b").item_emb)
