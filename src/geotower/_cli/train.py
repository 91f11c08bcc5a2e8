"""``geotower train DATA_DIR --out RUN [--config FILE] [--set section.key=value ...] [--resume]``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from geotower._cli.options import ConfigOpt, JsonOpt, QuietOpt, SetOpt, json_result, run_config, stdout_restored

__all__ = ["HELP", "train"]

HELP = "Train the two-tower model on a dataset folder and write a run folder."


@json_result
def train(
    data_dir: Annotated[Path, typer.Argument(help="Dataset folder (interactions, items[, users], dataset.toml).")],
    out: Annotated[Path, typer.Option("--out", help="Run folder to write (model, embeddings, manifest).")],
    config: ConfigOpt = None,
    set_: SetOpt = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue from the last complete epoch checkpoint in --out.")] = False,
    quiet: QuietOpt = False,
    nproc: Annotated[int, typer.Option("--nproc", min=1, help="Data-parallel processes on this machine "
                                       "(torch.distributed; see docs/scale.md for several machines).")] = 1,
    as_json: JsonOpt = False,
) -> dict[str, Any] | None:
    import os
    import sys

    from geotower.pipeline.train import train_run

    cfg = run_config(config, set_)
    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        from geotower.train.distributed import relaunch_under_torchrun, without_option

        with stdout_restored():  # with --json, rank 0 of the relaunched command prints the one JSON document
            code = relaunch_under_torchrun(nproc, without_option(sys.argv[1:], "--nproc"))
        raise typer.Exit(code)
    result = train_run(data_dir, out, cfg, resume=resume, progress=not quiet)
    if result is None:  # a rank > 0 of a distributed run: rank 0 reports
        return None
    console = Console()
    metrics = ", ".join(f"{k}@{cfg.eval.k}={v:.4f}" for k, v in result.val_metrics.items() if k != "users")
    console.print(f"trained {result.epochs_run} epochs in {result.wall_time_s:.1f}s; best epoch "
                  f"{result.best_epoch}" + (f" (validation {metrics})" if metrics else ""))
    console.print(f"{result.n_items} items, {result.n_users} users with train positives, "
                  f"{result.cold_users} cold users not trained on")
    console.print(f"run written to {result.run_dir}")
    return {"run": result.run_dir, "epochs_run": result.epochs_run, "best_epoch": result.best_epoch,
            "val_metrics": result.val_metrics, "items": result.n_items, "users": result.n_users,
            "cold_users": result.cold_users, "wall_time_s": round(result.wall_time_s, 2), "paths": result.paths}
