"""``geotower train DATA_DIR --out RUN [--config FILE] [--set section.key=value ...] [--resume]``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from geotower._cli.options import ConfigOpt, QuietOpt, SetOpt, run_config

__all__ = ["HELP", "train"]

HELP = "Train the two-tower model on a dataset folder and write a run folder."


def train(
    data_dir: Annotated[Path, typer.Argument(help="Dataset folder (interactions, items[, users], dataset.toml).")],
    out: Annotated[Path, typer.Option("--out", help="Run folder to write (model, embeddings, manifest).")],
    config: ConfigOpt = None,
    set_: SetOpt = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue from the last complete epoch checkpoint in --out.")] = False,
    quiet: QuietOpt = False,
) -> None:
    from geotower.pipeline.train import train_run

    cfg = run_config(config, set_)
    result = train_run(data_dir, out, cfg, resume=resume, progress=not quiet)
    console = Console()
    metrics = ", ".join(f"{k}@{cfg.eval.k}={v:.4f}" for k, v in result.val_metrics.items() if k != "users")
    console.print(f"trained {result.epochs_run} epochs in {result.wall_time_s:.1f}s; best epoch "
                  f"{result.best_epoch}" + (f" (validation {metrics})" if metrics else ""))
    console.print(f"{result.n_items} items, {result.n_users} users with train positives, "
                  f"{result.cold_users} cold users not trained on")
    console.print(f"run written to {result.run_dir}")
