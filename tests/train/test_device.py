"""Training on another device: every tensor of a step lives where the model lives.

CI has no GPU, so the step runs on PyTorch's ``meta`` device (shapes only, no data): a tensor created on the CPU
inside the towers, the losses or the batch would raise "expected all tensors on the same device" there exactly as
it would on CUDA. (Data-dependent ops such as ``torch.unique`` have no meta kernel, so the trend prior, which uses
one, is checked on the CPU only; ``benchmarks/gpu_check.sh`` runs everything on a real GPU.)
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest
import torch

from geotower.config import resolve
from geotower.model.history import History
from geotower.pipeline.train import build_setup
from geotower.train.loop import two_tower_loss
from geotower.train.sampling import make_sampler, train_data
from geotower.train.setup import new_model

META = torch.device("meta")
SETS = ["model.embed_dim=8", "model.cell_dim=4", "train.batch_size=16", "features.grid_cells_m=[500.0, 2000.0]",
        "model.trend_half_lives_days=[]", "eval.test_fraction=0.2"]


def _on(value: object, device: torch.device) -> bool:
    return not isinstance(value, torch.Tensor) or value.device == device


@pytest.mark.parametrize("sets", [["train.loss=\"softmax\""], ["train.loss=\"softmax\"", "model.item_bias=true"],
                                  ["train.full_softmax_max_items=1000"],
                                  ["train.loss=\"bpr\"", "train.n_negatives=2"], ["train.loss=\"bce\""]])
def test_a_training_step_and_the_export_run_where_the_model_is(cafes: Path, sets: list[str]) -> None:
    cfg = resolve(None, [*SETS, *sets])
    setup = build_setup(cafes, cfg)
    rows = train_data(setup.index, setup.rows.fit, cfg, setup.neighbours)
    model, _ = new_model(setup, rows, cfg)
    batch = next(make_sampler(rows, cfg, torch.Generator().manual_seed(0)).epoch()).to(META)
    assert all(_on(getattr(batch, f.name), META) for f in fields(batch))
    assert isinstance(batch.history, History) and all(_on(getattr(batch.history, f.name), META)
                                                      for f in fields(batch.history))
    model.to(META).train()
    loss = two_tower_loss(cfg.train.loss)(model, batch)
    loss.backward()
    assert loss.device == META and all(p.grad is None or p.grad.device == META for p in model.parameters())
    model.eval()
    with torch.no_grad():  # validation and export: bags built on the CPU, encoded on the model's device
        assert model.all_item_embeddings().device == META
        assert model.user_embeddings(rows.hist_indptr, rows.hist_items, None).device == META


def test_cpu_batches_are_not_copied(cafes: Path) -> None:
    cfg = resolve(None, SETS)
    setup = build_setup(cafes, cfg)
    rows = train_data(setup.index, setup.rows.fit, cfg, setup.neighbours)
    sampler = make_sampler(rows, cfg, torch.Generator().manual_seed(0))
    assert sampler.device is None  # train.device=cpu (or auto without a GPU): batches stay where they are built
    batch = next(sampler.epoch())
    assert batch.to(torch.device("cpu")).users.data_ptr() == batch.users.data_ptr()
