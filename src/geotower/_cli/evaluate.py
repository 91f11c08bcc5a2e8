"""``geotower evaluate RUN [--test FILE] [--k 10] [--baselines] [--json]``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from geotower._cli.options import JsonOpt, QuietOpt, RunArg, json_result

if TYPE_CHECKING:
    from geotower.pipeline.evaluate import EvalResult

__all__ = ["HELP", "evaluate"]

HELP = ("Score a trained run (and, with --baselines, the baselines) on held-out interactions: Recall, NDCG, "
        "HitRate, Precision at K.")


@json_result
def evaluate(
    run: RunArg,
    test: Annotated[Path | None, typer.Option(
        "--test", help="Test interactions (same columns as the training data) instead of the run's held-out "
                       "split; unknown users/items are counted and dropped.")] = None,
    k: Annotated[int | None, typer.Option("--k", help="Cut-off K; default: the run's eval.k (10).")] = None,
    baselines: Annotated[bool, typer.Option(
        "--baselines", help="Also fit MostPopular, ItemKNN, ALS, BPR-MF and the content-only two-tower "
                            "(tuned on validation) and print one table.")] = False,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> dict[str, Any]:
    from geotower.pipeline.evaluate import evaluate_run

    result = evaluate_run(run, k=k, test_file=test, baselines=baselines, progress=not quiet)
    _print_table(result)
    m = result.row("geotower").metrics
    return {**{f"{name}@{result.k}": m[name] for name in ("recall", "ndcg", "hitrate", "precision")},
            "users": result.users, "k": result.k, **result.summary(),
            "models": {row.model: {**row.metrics, "fit_s": row.fit_s, "note": row.note or None, "se": row.se or None,
                                   "paired": row.paired or None} for row in result.rows},
            "paths": result.paths}


def _print_table(result: EvalResult) -> None:
    """A rich table of every model's metrics, then the protocol counts and where the report went."""
    from geotower.evaluate.metrics import METRIC_NAMES
    from geotower.evaluate.report import metric_cell, paired_line

    table = Table(title=f"metrics @ K={result.k}")
    table.add_column("model", no_wrap=True)
    for name in ("Recall", "NDCG", "HitRate", "Prec.", "R.trunc", "fit s"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("params", overflow="fold")
    for row in result.rows:
        cells = [metric_cell(row, m) for m in METRIC_NAMES]  # NDCG and Recall with their standard errors
        params = ", ".join(f"{key}={v}" for key, v in row.params.items()) + (f" {row.note}" if row.note else "")
        table.add_row(row.name, *cells, "-" if row.fit_s is None else f"{row.fit_s:.2f}", params)
    console = Console()
    if not console.is_terminal:  # piped/logged output: do not squeeze the table into 80 columns
        console = Console(width=160)
    console.print(table)
    for row in result.rows:
        if row.paired:
            console.print(paired_line(row))
    console.print(f"{result.users} warm users evaluated on {result.test_source} ({result.test_rows} rows); "
                  f"{result.cold_users} cold users (no train positive) not evaluated")
    if result.unknown_users or result.unknown_items:
        console.print(f"dropped test rows with {result.unknown_users} unknown users and {result.unknown_items} "
                      "unknown items")
    console.print(f"report: {result.paths.get('markdown')}")
