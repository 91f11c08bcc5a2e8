"""Checkpointer round trip (weights, optimizer, RNG, loop state), incomplete checkpoints, TensorBoard, curves."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from geotower.train.callbacks import Checkpointer, TensorBoardLogger, completed_epochs, write_curves
from geotower.train.loop import LoopState


def setup(seed: int) -> tuple[nn.Module, torch.optim.Optimizer, torch.Generator]:
    torch.manual_seed(seed)
    model = nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    return model, opt, torch.Generator().manual_seed(seed)


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    model, opt, gen = setup(0)
    torch.randint(10, (5,), generator=gen)
    zeros = {k: v * 0 for k, v in model.state_dict().items()}
    state = LoopState(epoch=3, step=12, best_epoch=2, best_metric=0.25, bad_epochs=1,
                      history=[{"epoch": 3, "loss": 1.0}], best_weights=zeros)
    Checkpointer(tmp_path, model, opt, gen).on_epoch_end(state, model)
    expect_next = torch.randint(1000, (4,), generator=gen)
    expect_global = torch.rand(3)

    model2, opt2, gen2 = setup(1)
    torch.manual_seed(99)
    got = Checkpointer(tmp_path, model2, opt2, gen2).restore()
    assert got is not None and got.to_json() == state.to_json()
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), model2.state_dict().values(),
                                                  strict=True))
    assert torch.equal(opt.state_dict()["state"][0]["exp_avg"], opt2.state_dict()["state"][0]["exp_avg"])
    assert torch.equal(torch.randint(1000, (4,), generator=gen2), expect_next)
    assert torch.equal(torch.rand(3), expect_global)
    assert got.best_weights is not None and float(got.best_weights["weight"].abs().sum()) == 0.0


def test_incomplete_checkpoint_is_ignored_and_old_ones_pruned(tmp_path: Path) -> None:
    model, opt, gen = setup(0)
    ckpt = Checkpointer(tmp_path, model, opt, gen, keep=2)
    for e in (1, 2, 3):
        ckpt.on_epoch_end(LoopState(epoch=e), model)
    assert completed_epochs(tmp_path) == [2, 3]
    (tmp_path / "epoch_0003.json").unlink()  # killed between the two writes of epoch 3
    restored = Checkpointer(tmp_path, *setup(1)).restore()
    assert restored is not None and restored.epoch == 2


def test_tensorboard_and_curves(tmp_path: Path) -> None:
    state = LoopState(epoch=1, step=1, best_epoch=1, history=[{"epoch": 1, "loss": 0.5, "ndcg": 0.1}])
    tb = TensorBoardLogger(tmp_path / "tb", {"model.embed_dim": 8, "train.loss": "softmax"})
    tb.on_step(state, 0.5)
    tb.on_epoch_end(state, nn.Linear(1, 1))
    tb.on_train_end(state)
    assert list((tmp_path / "tb").rglob("events.out.tfevents.*"))
    write_curves(tmp_path / "curves.png", state.history, 10)
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_mlflow_logger_sends_params_and_metrics_through_the_callback_protocol(monkeypatch) -> None:
    import sys
    import types

    from geotower.train.callbacks import mlflow_from_env
    from geotower.train.loop import LoopState

    calls: list[tuple] = []
    fake = types.SimpleNamespace(
        start_run=lambda run_name=None: calls.append(("start", run_name)),
        log_params=lambda p: calls.append(("params", p)),
        log_metric=lambda k, v, step=None: calls.append(("metric", k, step)),
        log_metrics=lambda m, step=None: calls.append(("metrics", sorted(m), step)),
        end_run=lambda: calls.append(("end",)))
    monkeypatch.setitem(sys.modules, "mlflow", fake)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert mlflow_from_env({"train.lr": 0.001}) == []
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "file:///tmp/mlruns")
    (logger,) = mlflow_from_env({"train.lr": 0.001}, "run")
    state = LoopState()
    state.step, state.epoch, state.best_epoch = 50, 1, 1
    state.history = [{"epoch": 1, "loss": 0.5, "ndcg": 0.2}]
    logger.on_step(state, 0.5)
    logger.on_epoch_end(state, None)
    logger.on_train_end(state)
    assert calls == [("start", "run"), ("params", {"train.lr": "0.001"}), ("metric", "train/loss_step", 50),
                     ("metrics", ["epoch/loss", "epoch/ndcg"], 1), ("metrics", ["best_loss", "best_ndcg"], None),
                     ("end",)]
