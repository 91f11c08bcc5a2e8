"""MixedAdam: Adam + SparseAdam behind one optimizer, its state dict round trip, and sparse user IDs in a run."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch

from geotower import artifacts
from geotower.config import resolve
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


def test_a_run_with_sparse_user_ids_trains_checkpoints_and_repeats(cafes: Path, tmp_path: Path) -> None:
    sets = ["model.embed_dim=8", "model.cell_dim=4", "train.batch_size=32", "train.epochs=3", "train.patience=0",
            "features.grid_cells_m=[500.0, 2000.0]", "train.sparse_ids_min_users=1"]
    cfg = resolve(None, sets)
    first = train_run(cafes, tmp_path / "a", cfg, progress=False)
    assert artifacts.read_json(tmp_path / "a" / "model.json")["sparse_user_ids"] is True
    assert np.isfinite(first.val_metrics["ndcg"]) and first.epochs_run == 3  # checkpointed every epoch
    assert train_run(cafes, tmp_path / "b", cfg, progress=False).val_metrics == first.val_metrics
    dense = train_run(cafes, tmp_path / "c", resolve(None, [*sets[:-1], "train.sparse_ids_min_users=0"]),
                      progress=False)
    assert artifacts.read_json(tmp_path / "c" / "model.json")["sparse_user_ids"] is False
    assert np.isfinite(dense.val_metrics["ndcg"])
    sparse_users, dense_users = (load_bundle(tmp_path / r).user_emb for r in ("a", "c"))
    assert not np.allclose(sparse_users, dense_users)  # the switch is real (lazy Adam differs from dense Adam)
