"""Fresh start or ``--resume``: a resumed run must have the config it was started with; a fresh one starts clean."""

from __future__ import annotations

import warnings
from pathlib import Path

from geotower import artifacts
from geotower.config import RunConfig
from geotower.errors import ConfigError, GeotowerWarning
from geotower.train.callbacks import Checkpointer, completed_epochs
from geotower.train.loop import LoopState

__all__ = ["fresh_or_resume"]


def fresh_or_resume(out: Path, cfg: RunConfig, resume: bool, ckpt: Checkpointer) -> LoopState | None:
    """The loop state to continue from (``resume``), or None after deleting an older run's checkpoints.

    Raises:
        ConfigError: ``resume`` with a config (other than ``train.threads``) that differs from the recorded one.
    """
    ckpt_dir = out / "checkpoints"
    if resume:
        if (out / artifacts.CONFIG_JSON).exists():
            old, new = artifacts.read_json(out / artifacts.CONFIG_JSON), cfg.to_dict()
            for d in (old, new):  # thread count changes speed, not the run
                d.get("train", {}).pop("threads", None)
            if old != new:
                changed = sorted(f"{s}.{k}" for s in new if isinstance(new[s], dict)
                                 for k in new[s] if old.get(s, {}).get(k) != new[s][k])
                raise ConfigError(f"--resume: the config differs from the one {out} was started with: {changed}")
        state = ckpt.restore()
        if state is None:
            warnings.warn(f"--resume: no complete checkpoint in {ckpt_dir}; starting from scratch",
                          GeotowerWarning, stacklevel=3)
        return state
    for e in completed_epochs(ckpt_dir):  # a fresh run must not mix with an older one's checkpoints
        for suffix in (".json", ".safetensors"):
            (ckpt_dir / f"epoch_{e:04d}{suffix}").unlink(missing_ok=True)
    return None
