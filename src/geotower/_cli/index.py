"""``geotower index RUN [--kind auto|flat|hnsw|ivf] [--add ITEMS]``: the run's ANN index."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from geotower._cli.options import JsonOpt, RunArg, json_result, run_config

__all__ = ["HELP", "index"]

HELP = ("Build the run's ANN index (or add feature-only items with --add) and record its recall@10 against exact "
        "search in RUN/index.json.")
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML config file (serve.* keys are used).")]
SetOpt = Annotated[list[str] | None,
                   typer.Option("--set", help="Override a config key, e.g. serve.exact_max_items=1000.")]


@json_result
def index(run: RunArg,
          kind: Annotated[str | None, typer.Option(help="auto|flat|hnsw|ivf; auto = exact up to "
                                                        "serve.exact_max_items, HNSW above.")] = None,
          add: Annotated[Path | None, typer.Option(help="items.parquet|csv of new places (item_id, "
                                                       "features, lat, lon) to embed and add.")] = None,
          config: ConfigOpt = None, set_: SetOpt = None, as_json: JsonOpt = False) -> dict[str, Any]:
    from geotower.pipeline.recommend import add_items, build_run_index

    cfg = run_config(config, set_)
    if add is not None:
        res = add_items(run, add, cfg.serve.exact_max_items, cfg.seed)
    else:
        res = build_run_index(run, kind or cfg.serve.index_kind, cfg.serve.exact_max_items, cfg.seed)
    typer.echo(f"index {res.kind}: {res.n_items} items ({res.n_added} added), recall@10 vs exact "
               f"{res.recall_at_10:.3f}, {res.seconds:.1f} s -> {run / 'index.json'}")
    return {"run": run, "index": run / "index.json", "kind": res.kind, "items": res.n_items, "added": res.n_added,
            "recall_at_10": res.recall_at_10, "seconds": round(res.seconds, 2)}
