"""train_fixed: models trained side by side in threads equal the same models trained one by one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from geotower.config import resolve
from geotower.pipeline.train import build_setup
from geotower.train import setup as S
from geotower.train.sampling import train_data
from geotower.train.setup import train_fixed

SETS = ["model.embed_dim=8", "model.cell_dim=4", "train.batch_size=16", "train.lr=0.03",
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
    assert len(together) == 2 and pools == [2]  # two threads for the pair, none for a single model
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
    assert bundle.item_emb.shape[0] == 20 and (tmp_path / "run" / "curves.png").exists()


def test_validation_ranks_a_seeded_sample_of_at_most_val_max_users(cafes: Path, tmp_path: Path) -> None:
    from geotower.config import resolve
    from geotower.pipeline.train import train_run

    sets = ["train.epochs=1", "model.members=1", "eval.test_fraction=0.2"]
    full = train_run(cafes, tmp_path / "a", resolve(None, sets), progress=False)
    assert full.val_metrics["users"] > 3
    capped = train_run(cafes, tmp_path / "b", resolve(None, [*sets, "train.val_max_users=3"]), progress=False)
    assert capped.val_metrics["users"] == 3
