"""CLI command ``prepare checkins``: any check-in or review log -> dataset folder (see geotower.ingest.checkins)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from geotower._cli.options import JsonOpt, json_result
from geotower.errors import ConfigError

# the preset names (kept here, not imported, so the CLI starts without loading DuckDB; a test checks they match)
PRESET_NAMES = ("foursquare-tsmc", "gowalla", "brightkite", "foursquare-global")


__all__ = ["CHECKINS_HELP", "PRESET_NAMES", "checkins"]

CHECKINS_HELP = ("A check-in or review log (CSV/TSV/Parquet, .gz ok) -> dataset folder. Name the columns or pick a "
                 "--preset; the mapping can also live in the [checkins] section of a dataset.toml (--spec).")


@json_result
def checkins(
    file: Annotated[Path, typer.Argument(help="The log: one row per check-in / review.")],
    out: Annotated[Path, typer.Option(help="Dataset folder to write.")],
    preset: Annotated[str | None, typer.Option(help="Published layout: foursquare-tsmc, gowalla, brightkite, "
                                                    "foursquare-global.")] = None,
    user: Annotated[str | None, typer.Option(help="User id column.")] = None,
    item: Annotated[str | None, typer.Option(help="Place id column.")] = None,
    time: Annotated[str | None, typer.Option(help="Time column (epoch seconds or dates).")] = None,
    lat: Annotated[str | None, typer.Option(help="Latitude column.")] = None,
    lon: Annotated[str | None, typer.Option(help="Longitude column.")] = None,
    rating: Annotated[str | None, typer.Option(help="Rating column (positives: rating - 2 > 0).")] = None,
    category: Annotated[str | None, typer.Option(help="Place category column (a categorical feature).")] = None,
    sep: Annotated[str | None, typer.Option(help="Field separator (default: sniffed; tab for .tsv/.txt).")
                   ] = None,
    time_format: Annotated[str | None, typer.Option(help="strptime format of the time column.")] = None,
    pois: Annotated[Path | None, typer.Option(help="Places file with coordinates (foursquare-global).")] = None,
    spec: Annotated[Path | None, typer.Option(help="dataset.toml with a [checkins] column mapping and the "
                                                   "usual [interactions]/[items] rules.")] = None,
    as_json: JsonOpt = False,
) -> dict[str, Any]:
    from geotower.ingest.checkins import mapping_from_toml, prepare_checkins, resolve_format

    given = {"user": user, "item": item, "time": time, "lat": lat, "lon": lon, "rating": rating,
             "category": category, "sep": sep, "time_format": time_format}
    ds_spec = None
    if spec is not None:
        mapping, ds_spec = mapping_from_toml(spec)
        preset = preset or mapping.pop("preset", None)
        pois = pois or (Path(mapping.pop("pois")) if "pois" in mapping else None)
        mapping.pop("preset", None)
        mapping.pop("pois", None)
        given = {**mapping, **{k: v for k, v in given.items() if v is not None}}
    if sep is not None and sep.lower() in ("\\t", "tab"):
        given["sep"] = "\t"
    if preset is None and not (given.get("user") and given.get("item")):
        raise ConfigError("name --user and --item (or pick --preset, or map them in --spec)")
    res = prepare_checkins(file, out, resolve_format(preset, **given), pois=pois, spec=ds_spec)
    print(f"{out}: {res.n_checkins} check-ins by {res.n_users} users at {res.n_items} places"
          + (f"; dropped {res.dropped}" if res.dropped else ""), file=sys.stderr)
    return {"out": res.out_dir, "checkins": res.n_checkins, "users": res.n_users, "places": res.n_items,
            "dropped": res.dropped}
