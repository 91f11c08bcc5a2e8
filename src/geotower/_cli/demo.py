"""``geotower demo [--out DIR]``: the whole pipeline on the embedded central-Helsinki data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from geotower._cli.options import JsonOpt, QuietOpt, json_result, run_config

__all__ = ["HELP", "demo"]

HELP = ("Run the whole pipeline on embedded real OSM data (central Helsinki) with simulated reviews: prepare -> "
        "features -> train -> evaluate vs baselines; writes a report.")


@json_result
def demo(
    out: Annotated[Path, typer.Option("--out", help="Output folder (data/, run/, report.md).")] = Path("demo-out"),
    users: Annotated[int, typer.Option("--users", help="Simulated diners.")] = 3000,
    reviews: Annotated[int, typer.Option("--reviews", help="Simulated reviews.")] = 45_000,
    config: Annotated[Path | None, typer.Option("--config", help="TOML config file.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a config key (repeatable).")] = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> dict[str, Any]:
    from geotower.evaluate.report import markdown_table
    from geotower.pipeline.demo import DemoConfig, run_demo

    console = Console()
    cfg = run_config(config, set_)
    result = run_demo(out, cfg, DemoConfig(n_users=users, n_reviews=reviews, seed=cfg.seed),
                      progress=not quiet, log=lambda m: console.print(f"[bold]{m}[/bold]"))
    console.print(markdown_table(result.evaluation.rows, result.evaluation.k))
    console.print(f"warm test users {result.evaluation.users:,}; timings (s): {result.timings}")
    console.print(f"report: {result.report}  (run: {out / 'run'}, data: {out / 'data'})")
    ev = result.evaluation
    return {"out": out, "report": result.report, "run": out / "run", "data": out / "data", "k": ev.k,
            "users": ev.users, "models": {row.model: row.metrics for row in ev.rows}, "eval_paths": ev.paths,
            "timings": result.timings}
