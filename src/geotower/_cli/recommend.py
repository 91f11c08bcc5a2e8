"""``geotower recommend RUN [--user ID | --liked ID,...] [--near LAT,LON --radius-km R]``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from geotower._cli.index import ConfigOpt, SetOpt
from geotower._cli.options import JsonOpt, RunArg, json_result, parse_ids, run_config
from geotower.errors import DataError

__all__ = ["HELP", "recommend"]

HELP = ("Recommend places for a user (known: their embedding; unknown with --liked: cold start; neither: "
        "popularity). Train-seen places are excluded.")


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


@json_result
def recommend(run: RunArg,
              user: Annotated[str | None, typer.Option(help="User id.")] = None,
              k: Annotated[int, typer.Option(help="How many places (1-1000).")] = 10,
              near: Annotated[str | None, typer.Option(help="Point LAT,LON.")] = None,
              radius_km: Annotated[float | None, typer.Option(help="Only places within R km of --near.")] = None,
              liked: Annotated[str | None, typer.Option(help="Liked item ids ID,ID,... (cold start).")] = None,
              include_seen: Annotated[bool, typer.Option(help="Keep train-seen places.")] = False,
              explain: Annotated[bool, typer.Option(help="Say why: liked places, distance and surroundings features "
                                                         "that contributed most.")] = False,
              as_json: JsonOpt = False,
              config: ConfigOpt = None, set_: SetOpt = None) -> dict[str, Any] | None:
    from geotower.pipeline.recommend import recommend_run
    from geotower.retrieve.recommender import Query

    cfg = run_config(config, set_)
    query = Query(user, parse_ids(liked), k, _pair(near), radius_km, not include_seen)
    res = recommend_run(run, query, cfg.serve.exact_max_items, explain=explain)
    if as_json:  # the items are the result: no table on stderr
        return {"items": res.items, "mode": res.mode, "note": res.note}
    _print_table(res.items, res.mode, res.note)
    if explain:
        for i, it in enumerate(res.items, 1):
            typer.echo(f"{i}. {it['name'] or it['item_id']}: {it['reasons']['text']}")
    return None


def _print_table(items: list[dict[str, Any]], mode: str, note: str | None) -> None:
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
