"""MixedAdam: Adam + SparseAdam behind one optimizer, its state dict round trip, and sparse user IDs in a run."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from geotower import artifacts
from geotower.config import PRESETS, resolve
from geotower.model.bundle import load_bundle
from geotower.pipeline.train import train_run
from geotower.train.optim import MixedAdam


def _model_and_opt(seed: int) -> tuple[torch.nn.Module, MixedAdam]:
    torch.manual_seed(seed)
    model = torch.nn.ModuleDict({"users": torch.nn.Embedding(50, 4, sparse=True), "dense": torch.nn.Linear(4, 1)})
    return model, MixedAdam(torch.optim.Adam(model["dense"].parameters(), lr=0.05, fused=True),
                            [model["users"].weight], lr=0.05)


def _step(model: torch.nn.Module, opt: MixedAdam, rows: list[int]) -> None:
    opt.zero_grad()
    model["dense"](model["users"](torch.tensor(rows))).square().sum().backward()
    opt.step()


def test_only_the_batch_rows_move_and_the_state_round_trips() -> None:
    model, opt = _model_and_opt(0)
    before = model["users"].weight.detach().clone()
    _step(model, opt, [1, 2, 2])
    moved = (model["users"].weight != before).any(dim=1)
    assert moved.nonzero().ravel().tolist() == [1, 2]  # a sparse step: untouched rows keep their weights
    _step(model, opt, [3])
    state = opt.state_dict()
    assert all(torch.is_tensor(v) for s in state["state"].values() for v in s.values())  # checkpoints keep tensors
    twin, twin_opt = _model_and_opt(1)
    twin.load_state_dict(model.state_dict())
    twin_opt.load_state_dict(copy.deepcopy(state))  # as read back from a checkpoint: no shared tensors
    for m, o in ((model, opt), (twin, twin_opt)):
        _step(m, o, [2, 4])
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize(("knob", "flag", "table"), [("train.sparse_ids_min_users", "sparse_user_ids", "user_emb"),
                                                      ("train.sparse_ids_min_items", "sparse_item_ids", "item_emb")])
def test_a_run_with_sparse_tables_trains_checkpoints_repeats_and_resumes(cafes: Path, tmp_path: Path, knob: str,
                                                                        flag: str, table: str) -> None:
    """Many users (user IDs) or a large catalogue (item IDs, grid cells): sparse gradients and SparseAdam."""
    sets = [*PRESETS["early_stopping"],
            "model.embed_dim=8", "model.cell_dim=4", "train.batch_size=32", "train.epochs=3",
            "train.patience=0",
            "features.grid_cells_m=[500.0, 2000.0]", f"{knob}=1"]
    cfg = resolve(None, sets)
    first = train_run(cafes, tmp_path / "a", cfg, progress=False)
    assert artifacts.read_json(tmp_path / "a" / "model.json")[flag] is True
    assert np.isfinite(first.val_metrics["ndcg"]) and first.epochs_run == 3  # checkpointed every epoch
    assert train_run(cafes, tmp_path / "b", cfg, progress=False).val_metrics == first.val_metrics
    dense = train_run(cafes, tmp_path / "c", resolve(None, [*sets[:-1], f"{knob}=0"]), progress=False)
    assert artifacts.read_json(tmp_path / "c" / "model.json")[flag] is False
    assert np.isfinite(dense.val_metrics["ndcg"])
    sparse_emb, dense_emb = (getattr(load_bundle(tmp_path / r), table) for r in ("a", "c"))
    assert not np.allclose(sparse_emb, dense_emb)  # the switch is real (lazy Adam differs from dense Adam)
    resumed = train_run(cafes, tmp_path / "a", cfg, resume=True, progress=False)  # from the complete run's checkpoints
    assert resumed.val_metrics == first.val_metrics


def _twin_models(seed: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(seed)
    a = torch.nn.Sequential(torch.nn.Linear(5, 3), torch.nn.Linear(3, 1))
    return a, copy.deepcopy(a)


def _groups(model: torch.nn.Module) -> list[dict[str, object]]:
    first, second = list(model[0].parameters()), list(model[1].parameters())  # type: ignore[index]
    return [{"params": first}, {"params": second, "lr": 0.1, "weight_decay": 0.0}]


def _train(model: torch.nn.Module, opt: object, steps: range) -> None:
    for s in steps:
        torch.manual_seed(100 + s)
        opt.zero_grad()  # type: ignore[attr-defined]
        model(torch.randn(8, 5)).square().mean().backward()
        opt.step()  # type: ignore[attr-defined]


def test_adam_driver_equals_torch_adam_and_shares_its_state_dict() -> None:
    """geotower's Adam (torch's functional fused kernel) takes the same steps as torch.optim.Adam(fused=True),
    group settings included, and each resumes from the other's state dict."""
    from geotower.train.optim import Adam

    ours, ref = _twin_models(0)
    opt = Adam(_groups(ours), lr=0.01, weight_decay=1e-3)
    ref_opt = torch.optim.Adam(_groups(ref), lr=0.01, weight_decay=1e-3, fused=True)  # type: ignore[arg-type]
    _train(ours, opt, range(5))
    _train(ref, ref_opt, range(5))
    for p, q in zip(ours.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    # resume each from the other's state dict, then keep training both ways
    ours2, ref2 = copy.deepcopy(ref), copy.deepcopy(ours)
    opt2 = Adam(_groups(ours2), lr=0.5, weight_decay=0.0)  # settings come from the state dict
    opt2.load_state_dict(copy.deepcopy(ref_opt.state_dict()))
    ref_opt2 = torch.optim.Adam(_groups(ref2), lr=0.5, fused=True)  # type: ignore[arg-type]
    ref_opt2.load_state_dict(copy.deepcopy(opt.state_dict()))
    _train(ours2, opt2, range(5, 9))
    _train(ref2, ref_opt2, range(5, 9))
    _train(ref, ref_opt, range(5, 9))
    for p, q, r in zip(ours2.parameters(), ref2.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p, r, rtol=0, atol=0)
        torch.testing.assert_close(q, r, rtol=1e-6, atol=1e-7)  # torch's resume: one element 1 ulp apart


def test_adam_driver_rejects_a_foreign_state_dict() -> None:
    from geotower.train.optim import Adam

    model, _ = _twin_models(0)
    other = torch.nn.Linear(2, 2)
    state = Adam([{"params": list(other.parameters())}], lr=0.1).state_dict()
    with pytest.raises(ValueError, match="parameter groups"):
        Adam(_groups(model), lr=0.1).load_state_dict(state)


def test_building_and_stepping_the_towers_optimizer_does_not_import_dynamo() -> None:
    """Why the driver exists: torch.optim's step imports torch._dynamo (1.6 s per process)."""
    import subprocess
    import sys

    code = ("import sys, torch\nfrom geotower.train.optim import Adam\n"
            "p = torch.nn.Parameter(torch.randn(3, 2))\nopt = Adam([{'params': [p]}], lr=0.1)\n"
            "p.square().sum().backward(); opt.step(); opt.zero_grad(); opt.load_state_dict(opt.state_dict())\n"
            "print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr


def test_a_resumed_lr_schedule_keeps_its_first_rate_and_mixed_adam_shows_both_halves_groups() -> None:
    """lr decay stores each group's first rate as ``initial_lr``; a resume must bring it back, or the schedule
    would restart from the already-decayed rate."""
    from geotower.train.optim import Adam

    model, _ = _twin_models(0)
    opt = Adam(_groups(model), lr=0.4)
    opt.param_groups[0]["initial_lr"], opt.param_groups[0]["lr"] = 0.4, 0.1
    twin, _ = _twin_models(0)
    resumed = Adam(_groups(twin), lr=0.4)
    resumed.load_state_dict(opt.state_dict())
    assert (resumed.param_groups[0]["initial_lr"], resumed.param_groups[0]["lr"]) == (0.4, 0.1)
    sparse_model, mixed = _model_and_opt(0)
    assert len(mixed.param_groups) == 2 and mixed.param_groups[1]["params"] == [sparse_model["users"].weight]
