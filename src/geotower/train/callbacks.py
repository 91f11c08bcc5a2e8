"""Training callbacks: TensorBoard (and optional MLflow) logging and per-epoch checkpoints (written atomically).

A checkpoint is two files per epoch: ``epoch_NNNN.safetensors`` (model weights, optimizer tensors, best weights,
RNG states as uint8 arrays) and then ``epoch_NNNN.json`` (loop state, optimizer hyperparameters). The JSON is
written last, so a checkpoint counts only when both exist: a ``kill -9`` mid-write leaves the previous epoch as
the one to resume from.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from geotower import artifacts
from geotower.errors import ArtifactError
from geotower.train.loop import LoopState
from geotower.train.optim import OptimizerLike

_EPOCH_JSON = re.compile(r"^epoch_(\d{4,})\.json$")


class TensorBoardLogger:
    """Loss per step, metrics per epoch and the run's hyperparameters, in ``log_dir``.

    Args:
        log_dir: the run's ``tb/`` folder.
        hparams: flat config values shown in TensorBoard's HPARAMS tab.
        purge_step: on resume, the first step to (re)write; later events from a killed run are dropped.
    """

    def __init__(self, log_dir: Path, hparams: dict[str, Any], purge_step: int | None = None) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:  # tensorboard is a declared dependency, but keep the hint
            raise ImportError("TensorBoard logging needs the 'tensorboard' package: pip install tensorboard") from exc
        self.writer = SummaryWriter(str(log_dir), purge_step=purge_step)
        self.hparams = {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in hparams.items()}

    def on_step(self, state: LoopState, loss: float) -> None:
        self.writer.add_scalar("train/loss_step", loss, state.step)

    def on_epoch_end(self, state: LoopState, model: nn.Module) -> None:
        for key, value in state.history[-1].items():
            if key != "epoch":
                self.writer.add_scalar(f"epoch/{key}", value, state.epoch)
        self.writer.flush()

    def on_train_end(self, state: LoopState) -> None:
        metrics = {f"hparam/best_{k}": v for k, v in _best_record(state).items() if k != "epoch"}
        self.writer.add_hparams(self.hparams, metrics, run_name=".")
        self.writer.close()


class MLflowLogger:
    """The same events as :class:`TensorBoardLogger`, sent to an MLflow tracking server or folder.

    Optional (``pip install geotower[mlflow]``): :func:`mlflow_from_env` attaches it when ``MLFLOW_TRACKING_URI``
    is set, so nothing changes for users without MLflow. Params are logged once, metrics per step/epoch, the
    best epoch's metrics at the end.
    """

    def __init__(self, hparams: dict[str, Any], run_name: str | None = None, every: int = 50) -> None:
        import mlflow

        self.mlflow, self.every = mlflow, max(1, every)
        self.run = mlflow.start_run(run_name=run_name)
        mlflow.log_params({k: str(v)[:500] for k, v in hparams.items()})

    def on_step(self, state: LoopState, loss: float) -> None:
        if state.step % self.every == 0:
            self.mlflow.log_metric("train/loss_step", loss, step=state.step)

    def on_epoch_end(self, state: LoopState, model: nn.Module) -> None:
        self.mlflow.log_metrics({f"epoch/{k}": float(v) for k, v in state.history[-1].items() if k != "epoch"},
                                step=state.epoch)

    def on_train_end(self, state: LoopState) -> None:
        best = {f"best_{k}": float(v) for k, v in _best_record(state).items() if k != "epoch"}
        if best:
            self.mlflow.log_metrics(best)
        self.mlflow.end_run()


def mlflow_from_env(hparams: dict[str, Any], run_name: str | None = None) -> list[MLflowLogger]:
    """``[MLflowLogger]`` when ``MLFLOW_TRACKING_URI`` is set (an error if mlflow is then missing), else ``[]``."""
    import os

    if not os.environ.get("MLFLOW_TRACKING_URI"):
        return []
    try:
        return [MLflowLogger(hparams, run_name)]
    except ImportError as exc:
        raise ImportError("MLFLOW_TRACKING_URI is set but mlflow is not installed: pip install 'geotower[mlflow]'"
                          ) from exc


def _best_record(state: LoopState) -> dict[str, float]:
    for rec in state.history:
        if rec["epoch"] == state.best_epoch:
            return rec
    return {}


class Checkpointer:
    """Saves and restores everything a resumed run needs to end with the same weights.

    Args:
        folder: the run's ``checkpoints/`` folder.
        model, optimizer: the objects whose state is saved/restored in place.
        generator: the batch sampler's generator (its state is saved with the epoch).
        keep: how many most recent epochs to keep on disk.
    """

    def __init__(self, folder: Path, model: nn.Module, optimizer: OptimizerLike,
                 generator: torch.Generator, keep: int = 2) -> None:
        self.folder, self.model, self.optimizer, self.generator, self.keep = folder, model, optimizer, generator, keep

    def on_step(self, state: LoopState, loss: float) -> None:
        return None

    def on_train_end(self, state: LoopState) -> None:
        return None

    def on_epoch_end(self, state: LoopState, model: nn.Module) -> None:
        arrays = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        arrays.update({f"best.{k}": v for k, v in (state.best_weights or {}).items()})
        opt = self.optimizer.state_dict()
        for pid, tensors in opt["state"].items():
            arrays.update({f"opt.{pid}.{k}": v.reshape(-1) for k, v in tensors.items()})
        arrays["rng.torch"] = torch.get_rng_state()
        arrays["rng.generator"] = self.generator.get_state()
        if torch.cuda.is_available() and torch.cuda.is_initialized():  # ID dropout on a GPU draws from its RNG
            arrays["rng.cuda"] = torch.cuda.get_rng_state()
        stem = self.folder / f"epoch_{state.epoch:04d}"
        artifacts.save_arrays(stem.with_suffix(".safetensors"), {k: _np(v) for k, v in arrays.items()})
        meta = {"state": state.to_json(), "param_groups": opt["param_groups"],
                "opt_shapes": {f"{pid}.{k}": list(v.shape) for pid, t in opt["state"].items() for k, v in t.items()}}
        artifacts.write_json(stem.with_suffix(".json"), meta)
        self._prune(state.epoch)

    def _prune(self, epoch: int) -> None:
        for e in completed_epochs(self.folder):
            if e <= epoch - self.keep:
                for suffix in (".json", ".safetensors"):
                    (self.folder / f"epoch_{e:04d}{suffix}").unlink(missing_ok=True)

    def restore(self) -> LoopState | None:
        """Load the last complete checkpoint into model/optimizer/generator; None when there is none."""
        epochs = completed_epochs(self.folder)
        if not epochs:
            return None
        stem = self.folder / f"epoch_{epochs[-1]:04d}"
        meta = artifacts.read_json(stem.with_suffix(".json"))
        arrays = {k: torch.from_numpy(v.copy()) for k, v in artifacts.load_arrays(stem.with_suffix(".safetensors"))
                  .items()}
        try:
            self.model.load_state_dict(_prefixed(arrays, "model."))
            opt_state: dict[int, dict[str, Tensor]] = {int(key.split(".")[0]): {} for key in meta["opt_shapes"]}
            for key, shape in meta["opt_shapes"].items():
                pid, name = key.split(".", 1)
                opt_state[int(pid)][name] = arrays[f"opt.{key}"].reshape(shape)
            self.optimizer.load_state_dict({"state": opt_state, "param_groups": meta["param_groups"]})
        except (RuntimeError, KeyError, ValueError) as exc:
            raise ArtifactError(f"checkpoint {stem} does not match this model/config: {exc}") from None
        torch.set_rng_state(arrays["rng.torch"])
        self.generator.set_state(arrays["rng.generator"])
        if "rng.cuda" in arrays and torch.cuda.is_available():
            torch.cuda.set_rng_state(arrays["rng.cuda"])
        best = _prefixed(arrays, "best.") or None
        return LoopState.from_json(meta["state"], best)


def _np(t: Tensor) -> np.ndarray:
    return t.detach().cpu().contiguous().numpy()


def _prefixed(arrays: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}


def completed_epochs(folder: Path) -> list[int]:
    """Epoch numbers with both checkpoint files present, ascending."""
    if not folder.is_dir():
        return []
    found = [int(m.group(1)) for p in folder.iterdir() if (m := _EPOCH_JSON.match(p.name))]
    return sorted(e for e in found if (folder / f"epoch_{e:04d}.safetensors").exists())


def write_curves(path: Path, history: list[dict[str, float]], k: int, best_epoch: int | None = None) -> None:
    """Training loss and validation metrics per epoch as a PNG (matplotlib, headless); the kept epoch is marked."""
    from matplotlib.figure import Figure  # no pyplot: leaves the caller's backend (a notebook's) alone

    epochs = [r["epoch"] for r in history]
    fig = Figure(figsize=(10, 4))
    ax_loss, ax_val = fig.subplots(1, 2)
    ax_loss.plot(epochs, [r["loss"] for r in history], marker="o")
    ax_loss.set(title="training loss", xlabel="epoch", ylabel="loss")
    for key in ("ndcg", "recall", "hitrate"):
        if history and key in history[0]:
            ax_val.plot(epochs, [r[key] for r in history], marker="o", label=f"{key}@{k}")
    ax_val.set(title="validation", xlabel="epoch")
    if best_epoch:
        for ax in (ax_loss, ax_val):
            ax.axvline(best_epoch, color="grey", linestyle="--", linewidth=1)
    if ax_val.lines:
        ax_val.legend()
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.13, top=0.91, wspace=0.22)  # tight_layout: a second draw
    artifacts.write_with(path, lambda p: fig.savefig(p, format="png", dpi=100))
