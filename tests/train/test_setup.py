"""train_fixed: models trained side by side in threads equal the same models trained one by one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from geotower.config import PRESETS, resolve
from geotower.pipeline.train import build_setup
from geotower.train import setup as S
from geotower.train.sampling import train_data
from geotower.train.setup import train_fixed

SETS = [*PRESETS["early_stopping"], "model.embed_dim=8", "model.cell_dim=4", "train.batch_size=16", "train.lr=0.03",
        "features.grid_cells_m=[500.0, 2000.0]", "model.id_dropout=0.3", "train.threads=1"]


def test_side_by_side_equals_one_by_one(cafes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.set_num_threads(1)  # the side-by-side path: one torch thread per model
    monkeypatch.setattr(S.os, "cpu_count", lambda: 2)
    pools: list[int] = []

    class Spy(S.ThreadPoolExecutor):
        def __init__(self, max_workers: int, **kw: object) -> None:
            pools.append(max_workers)
            super().__init__(max_workers, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(S, "ThreadPoolExecutor", Spy)
    cfg = resolve(None, SETS)
    setup = build_setup(cafes, cfg)
    rows = train_data(setup.index, setup.rows.train, cfg, setup.neighbours)
    together = train_fixed(setup, rows, cfg, 3, seeds=[3, 4], progress=False)
    alone = [train_fixed(setup, rows, cfg, 3, seeds=[s], progress=False)[0] for s in (3, 4)]
    assert len(together) == 2 and pools == [1]  # the caller's thread and one more for the pair, none for one model
    for a, b in zip(together, alone, strict=True):
        for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
            torch.testing.assert_close(x, y, rtol=0, atol=0, msg=name)
    first = together[0].state_dict()
    assert any(not torch.equal(v, together[1].state_dict()[k]) for k, v in first.items())  # seeds differ


def test_fixed_budget_trains_every_member_on_all_rows(cafes: Path, tmp_path: Path) -> None:
    """train.early_stopping=false: no validation rows inside train, members trained train.epochs epochs each."""
    from geotower import artifacts
    from geotower.config import resolve
    from geotower.model.bundle import load_bundle
    from geotower.pipeline.train import train_run

    cfg = resolve(None, ["train.early_stopping=false", "train.epochs=2", "model.members=2", "train.lr_decay=true",
                         "eval.test_fraction=0.2"])
    result = train_run(cafes, tmp_path / "run", cfg, progress=False)
    manifest = artifacts.read_json(tmp_path / "run" / artifacts.MANIFEST)
    assert (result.best_epoch, result.epochs_run, manifest["members"]) == (2, 2, 2)
    assert set(manifest["stage_seconds"]) == {"setup", "members", "write"}
    bundle = load_bundle(tmp_path / "run")
    assert bundle.item_emb.shape[0] == 20 and not (tmp_path / "run" / "curves.png").exists()  # nothing validated


def test_validation_ranks_a_seeded_sample_of_at_most_val_max_users(cafes: Path, tmp_path: Path) -> None:
    from geotower.pipeline.train import train_run

    sets = [*PRESETS["early_stopping"], "train.epochs=1", "model.members=1", "eval.test_fraction=0.2"]
    full = train_run(cafes, tmp_path / "a", resolve(None, sets), progress=False)
    assert full.val_metrics["users"] > 3
    capped = train_run(cafes, tmp_path / "b", resolve(None, [*sets, "train.val_max_users=3"]), progress=False)
    assert capped.val_metrics["users"] == 3


def test_followers_trained_alongside_equal_a_refit_afterwards(cafes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Refit models that follow early stopping's best epoch (EpochBudget) end with the weights of training them
    afterwards for the final count, whichever threads train their epochs (one spare thread on 2 cores, two on 3,
    and early stopping's once it ends); a failed early stopping stops them."""
    import time

    torch.set_num_threads(1)
    cfg = resolve(None, SETS)
    setup = build_setup(cafes, cfg)
    rows = train_data(setup.index, setup.rows.train, cfg, setup.neighbours)
    after = train_fixed(setup, rows, cfg, 3, seeds=[3, 4], progress=False)
    for cores in (2, 3):
        monkeypatch.setattr(S.os, "cpu_count", lambda cores=cores: cores)
        budget = S.EpochBudget(1)

        def early_stopping(show: bool, budget: S.EpochBudget = budget) -> None:  # best 1, 1, 2; the end at 3
            for best in (1, 1, 2):
                budget.raise_to(best)
                time.sleep(0.05)
            budget.close(3)

        pool = S.FollowerPool([S.member(setup, rows, cfg, seed) for seed in (3, 4)], cfg, budget)
        assert pool.threads() == cores - 1

        def early_then_help(show: bool, budget: S.EpochBudget = budget, pool: S.FollowerPool = pool) -> None:
            early_stopping(show, budget)
            pool.work(show)

        S.side_by_side([early_then_help, *[pool.work] * pool.threads()], progress=False)
        followed = pool.models  # in seed order
        for a, b in zip(followed, after, strict=True):
            for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
                torch.testing.assert_close(x, y, rtol=0, atol=0, msg=name)

    failed = S.EpochBudget()
    failed.raise_to(1)
    failed.close(None)
    assert failed.after(1) is None and failed.after(0) is None  # nothing more to train once early stopping failed


def test_train_run_with_followers_equals_the_sequential_run(cafes: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The default run (refit and second member alongside early stopping, threads) writes the embeddings of the
    same run done one stage after the other (one core)."""
    import numpy as np

    from geotower.model.bundle import load_bundle
    from geotower.pipeline.train import train_run

    sets = [*SETS, "train.epochs=4", "train.patience=1", "eval.test_fraction=0.2"]
    monkeypatch.setattr(S.os, "cpu_count", lambda: 2)
    together = train_run(cafes, tmp_path / "a", resolve(None, sets), progress=False)
    monkeypatch.setattr(S.os, "cpu_count", lambda: 1)
    alone = train_run(cafes, tmp_path / "b", resolve(None, sets), progress=False)
    assert together.best_epoch == alone.best_epoch and together.val_metrics == alone.val_metrics
    a, b = load_bundle(tmp_path / "a"), load_bundle(tmp_path / "b")
    np.testing.assert_array_equal(a.item_emb, b.item_emb)
    np.testing.assert_array_equal(a.user_emb, b.user_emb)


def test_a_failing_early_stopping_stops_the_refit_models(cafes: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """An error in early stopping (here: in its second validation) is raised, and the refit models waiting on its
    best epoch stop instead of waiting for ever."""
    import threading

    from geotower.pipeline import train as P

    monkeypatch.setattr(S.os, "cpu_count", lambda: 2)
    calls: list[int] = []
    real = P.evaluate_embeddings

    def flaky(*args, **kw):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("validation broke")
        return real(*args, **kw)

    monkeypatch.setattr(P, "evaluate_embeddings", flaky)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            P.train_run(cafes, tmp_path / "run", resolve(None, [*SETS, "train.epochs=4", "eval.test_fraction=0.2"]),
                        progress=False)
        except BaseException as exc:  # noqa: BLE001  # handed to the test thread
            errors.append(exc)

    worker = threading.Thread(target=run, daemon=True)  # a hang fails the test instead of blocking the suite
    worker.start()
    worker.join(120)
    assert not worker.is_alive(), "train_run hung: the refit models kept waiting on early stopping"
    assert len(errors) == 1 and "validation broke" in str(errors[0])
    assert not [t for t in threading.enumerate() if t.name.startswith("geotower-member")]


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0, msg=name)


def test_snapshot_members_are_one_trajectory_after_its_last_epochs(cafes: Path) -> None:
    """model.snapshots=3 with a chosen count of 2: one model per seed trains 3 epochs and stands for its weights
    after epochs 1, 2 and 3, each equal to that seed trained that long; alongside early stopping (EpochBudget with
    the extra epoch) the same members come out."""
    torch.set_num_threads(1)
    cfg = resolve(None, [*SETS, "model.snapshots=3"])
    one = resolve(None, SETS)
    setup = build_setup(cafes, cfg)
    rows = train_data(setup.index, setup.rows.train, cfg, setup.neighbours)
    assert S.extra_epochs(cfg) == 1 and S.extra_epochs(one) == 0
    snaps = train_fixed(setup, rows, cfg, 2, seeds=[3, 4], progress=False)
    assert len(snaps) == 6 and not any(m.training for m in snaps)
    for k, epochs in enumerate((1, 2, 3)):
        for s, seed in enumerate((3, 4)):
            _same_weights(snaps[3 * s + k], train_fixed(setup, rows, one, epochs, seeds=[seed], progress=False)[0])
    assert snaps[0].item_dense is snaps[2].item_dense  # the copies share the fixed inputs

    budget = S.EpochBudget(1, extra=S.extra_epochs(cfg))
    pool = S.FollowerPool([S.member(setup, rows, cfg, seed) for seed in (3, 4)], cfg, budget)
    budget.close(2 + S.extra_epochs(cfg))  # early stopping chose 2
    pool.work(False)
    for a, b in zip(pool.members(), snaps, strict=True):
        _same_weights(a, b)


def test_a_run_with_snapshot_members_writes_their_ensemble(cafes: Path, tmp_path: Path) -> None:
    from geotower import artifacts
    from geotower.model.bundle import load_bundle
    from geotower.model.ensemble import TowerEnsemble
    from geotower.pipeline.train import train_run

    cfg = resolve(None, [*SETS, "model.members=1", "model.snapshots=3", "train.epochs=3", "eval.test_fraction=0.2"])
    result = train_run(cafes, tmp_path / "run", cfg, progress=False)
    manifest = artifacts.read_json(tmp_path / "run" / artifacts.MANIFEST)
    bundle = load_bundle(tmp_path / "run")
    # the refit trains one epoch past early stopping's choice: three members, unless the choice was epoch 1
    expected = 3 if result.best_epoch >= 2 else 2
    assert manifest["members"] == expected
    assert isinstance(bundle.model, TowerEnsemble) and len(bundle.model.members) == expected
