"""The ``geotower prepare`` group: ``prepare yelp`` turns Yelp's JSON-lines files into a dataset folder."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from geotower._cli.options import JsonOpt, json_result, parse_bbox, run_config

__all__ = ["HELP", "YELP_HELP", "yelp"]

HELP = "Turn raw data into a dataset folder."
YELP_HELP = ("Yelp's download (yelp_dataset.tar or its extracted folder), or business.json + review.json (JSON "
             "lines, as Yelp ships them) -> dataset folder of restaurants (categories contain 'Restaurants' or "
             "'Food').")
_console = Console(soft_wrap=True)


@json_result
def yelp(
    out: Annotated[Path, typer.Option(help="Dataset folder to write.")],
    download: Annotated[Path | None, typer.Argument(
        help="The official Yelp download: yelp_dataset.tar (.tar.gz ok) or the folder it was extracted to "
             "(yelp_academic_dataset_business.json, ..._review.json). From a .tar, the two files are copied, "
             "streamed, to a temporary folder beside --out (about 5 GB for the full dataset) and deleted after.",
        show_default=False)] = None,
    business: Annotated[Path | None, typer.Option(help="Yelp business JSON-lines file (.json or .json.gz), "
                                                       "instead of DOWNLOAD.")] = None,
    reviews: Annotated[Path | None, typer.Option(help="Yelp review JSON-lines file; streamed, never loaded "
                                                      "whole.")] = None,
    city: Annotated[str | None, typer.Option(help="Keep one city (case-insensitive exact), e.g. Philadelphia.")
                    ] = None,
    state: Annotated[str | None, typer.Option(help="Keep one state code (case-insensitive), e.g. PA.")] = None,
    bbox: Annotated[str | None, typer.Option(help="Keep businesses in minlon,minlat,maxlon,maxlat.")] = None,
    strict: Annotated[bool, typer.Option(help="Fail on the first bad line instead of skipping it.")] = False,
    osm: Annotated[Path | None, typer.Option(help="OSM source (.osm.pbf or Geofabrik shapefile zip/folder): "
                                                  "add context features to the items.")] = None,
    memory_limit: Annotated[str, typer.Option(help="DuckDB memory cap, e.g. 1GB; the rest spills to disk.")
                            ] = "1GB",
    threads: Annotated[int | None, typer.Option(help="DuckDB threads (default: all cores).")] = None,
    config: Annotated[Path | None, typer.Option(help="TOML config (the [features] section is used with --osm).")
                      ] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a config key: section.key=value.")
                    ] = None,
    as_json: JsonOpt = False,
) -> dict[str, Any]:
    from geotower.ingest.yelp import YelpFilter
    from geotower.pipeline.prepare import YelpInputs, prepare_yelp_dataset

    start = time.perf_counter()
    cfg = run_config(config, set_)
    flt = YelpFilter(city=city, state=state, bbox=parse_bbox(bbox))
    inputs = YelpInputs(business, reviews, memory_limit, threads, download=download)
    result = prepare_yelp_dataset(inputs, out, flt, strict=strict, osm=osm, features=cfg.features)
    r = result.report
    _console.print(f"[bold]{out}[/bold]: {r.businesses_kept} of {r.businesses_read} businesses, "
                   f"{r.reviews_kept} of {r.reviews_read} reviews, {r.users} users; "
                   f"skipped {r.skipped}; peak memory {r.peak_rss_mb:.0f} MB")
    if result.osm_items is not None:
        _console.print(f"OSM context features added: {result.osm_items}")
    return {"out": r.out_dir, "businesses_read": r.businesses_read, "businesses_kept": r.businesses_kept,
            "reviews_read": r.reviews_read, "reviews_kept": r.reviews_kept, "users": r.users, "skipped": r.skipped,
            "osm_items": result.osm_items, "peak_rss_mb": round(r.peak_rss_mb, 1),
            "seconds": round(time.perf_counter() - start, 2)}
