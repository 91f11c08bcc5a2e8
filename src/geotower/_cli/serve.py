"""CLI commands ``index``, ``recommend`` and ``serve`` (registered on the lead's Typer app by ``register``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from geotower.errors import DataError

RunArg = Annotated[Path, typer.Argument(help="Run directory written by `geotower train`.")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML config file (serve.* keys are used).")]
SetOpt = Annotated[list[str] | None,
                   typer.Option("--set", help="Override a config key, e.g. serve.exact_max_items=1000.")]


def _pair(text: str | None) -> tuple[float, float] | None:
    """"LAT,LON" -> (lat, lon); ranges are checked by the recommender."""
    if text is None:
        return None
    parts = text.split(",")
    try:
        lat, lon = (float(p) for p in parts)
    except ValueError:
        raise DataError(f"--near expects LAT,LON (e.g. 39.95,-75.16), got {text!r}", column="near") from None
    return lat, lon


def _ids(text: str | None) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split(",") if s.strip()) if text else ()


def register(app: typer.Typer) -> None:
    """Add the retrieval and serving commands to ``app``."""

    @app.command("index", help="Build the run's ANN index (or add feature-only items with --add) and record its "
                               "recall@10 against exact search in RUN/index.json.")
    def index_cmd(run: RunArg,
                  kind: Annotated[str | None, typer.Option(help="auto|flat|hnsw|ivf; auto = exact up to "
                                                                 "serve.exact_max_items, HNSW above.")] = None,
                  add: Annotated[Path | None, typer.Option(help="items.parquet|csv of new places (item_id, "
                                                                "features, lat, lon) to embed and add.")] = None,
                  config: ConfigOpt = None, set_: SetOpt = None) -> None:
        from geotower.config import resolve
        from geotower.pipeline.recommend import add_items, build_run_index

        cfg = resolve(config, set_ or ())
        if add is not None:
            res = add_items(run, add, cfg.serve.exact_max_items, cfg.seed)
        else:
            res = build_run_index(run, kind or cfg.serve.index_kind, cfg.serve.exact_max_items, cfg.seed)
        typer.echo(f"index {res.kind}: {res.n_items} items ({res.n_added} added), recall@10 vs exact "
                   f"{res.recall_at_10:.3f}, {res.seconds:.1f} s -> {run / 'index.json'}")

    @app.command("recommend", help="Recommend places for a user (known: their embedding; unknown with --liked: "
                                   "cold start; neither: popularity). Train-seen places are excluded.")
    def recommend_cmd(run: RunArg,
                      user: Annotated[str | None, typer.Option(help="User id.")] = None,
                      k: Annotated[int, typer.Option(help="How many places (1-1000).")] = 10,
                      near: Annotated[str | None, typer.Option(help="Point LAT,LON.")] = None,
                      radius_km: Annotated[float | None, typer.Option(help="Only places within R km of --near.")]
                      = None,
                      liked: Annotated[str | None, typer.Option(help="Liked item ids ID,ID,... (cold start).")]
                      = None,
                      include_seen: Annotated[bool, typer.Option(help="Keep train-seen places.")] = False,
                      explain: Annotated[bool, typer.Option(help="Say why: liked places, distance and surroundings "
                                                                 "features that contributed most.")] = False,
                      as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
                      config: ConfigOpt = None, set_: SetOpt = None) -> None:
        from geotower.config import resolve
        from geotower.pipeline.recommend import recommend_run
        from geotower.retrieve.recommender import Query

        cfg = resolve(config, set_ or ())
        query = Query(user, _ids(liked), k, _pair(near), radius_km, not include_seen)
        res = recommend_run(run, query, cfg.serve.exact_max_items, explain=explain)
        if as_json:
            typer.echo(json.dumps({"items": res.items, "mode": res.mode, "note": res.note}, indent=2))
            return
        _print_table(res.items, res.mode, res.note)
        if explain:
            for i, it in enumerate(res.items, 1):
                typer.echo(f"{i}. {it['name'] or it['item_id']}: {it['reasons']['text']}")

    @app.command("serve", help="Serve the run over HTTP (FastAPI + uvicorn): /recommend, /items, /docs and a "
                               "map page at /.")
    def serve_cmd(run: RunArg,
                  host: Annotated[str, typer.Option(help="Bind address; keep 127.0.0.1 unless the service must "
                                                         "be reachable from other machines.")] = "127.0.0.1",
                  port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
                  osm: Annotated[Path | None, typer.Option(help="OSM extract (the features' source) to draw the "
                                                                "map's roads, water, land use and buildings from."
                                                           )] = None) -> None:
        import uvicorn

        from geotower.retrieve.service import create_app

        app_ = create_app(run, osm=osm)
        if host not in ("127.0.0.1", "localhost", "::1"):
            typer.echo(f"warning: binding to {host}; the service has no authentication", err=True)
        uvicorn.run(app_, host=host, port=port, log_level="info")


def _print_table(items: list[dict], mode: str, note: str | None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(items)} places ({mode})")
    for col in ("#", "item_id", "name", "score", "km"):
        table.add_column(col)
    for i, it in enumerate(items, 1):
        km = "" if it["distance_km"] is None else f"{it['distance_km']:.2f}"
        table.add_row(str(i), it["item_id"], it["name"] or "", f"{it['score']:.4f}", km)
    console = Console()
    console.print(table)
    if note:
        console.print(f"note: {note}")
