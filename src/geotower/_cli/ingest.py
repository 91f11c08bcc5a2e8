"""CLI commands ``prepare yelp`` and ``simulate``: parse options, call the ingest library, print a summary."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from geotower.config import resolve
from geotower.errors import ConfigError

_console = Console(soft_wrap=True)


def _parse_bbox(text: str | None) -> tuple[float, float, float, float] | None:
    """``minlon,minlat,maxlon,maxlat`` → floats; anything else is a ConfigError naming the flag."""
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or values[0] > values[2] or values[1] > values[3]:
        raise ConfigError(f"--bbox {text!r}: expected minlon,minlat,maxlon,maxlat with min <= max")
    return values  # type: ignore[return-value]


def register(app: typer.Typer) -> None:
    """Add ``prepare yelp`` and ``simulate`` to ``app``."""
    prepare = typer.Typer(help="Turn raw data into a dataset folder.", no_args_is_help=True)
    app.add_typer(prepare, name="prepare")

    @prepare.command("yelp", help="Yelp business.json + review.json (JSON lines, as Yelp ships them) -> dataset "
                                  "folder of restaurants (categories contain 'Restaurants' or 'Food').")
    def prepare_yelp_cmd(
        business: Annotated[Path, typer.Option(help="Yelp business JSON-lines file (.json or .json.gz).")],
        reviews: Annotated[Path, typer.Option(help="Yelp review JSON-lines file; streamed, never loaded whole.")],
        out: Annotated[Path, typer.Option(help="Dataset folder to write.")],
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
        config: Annotated[Path | None, typer.Option(help="TOML config (the [features] section is used with --osm)."
                                                    )] = None,
        set_: Annotated[list[str] | None, typer.Option("--set", help="Override a config key: section.key=value.")
                        ] = None,
    ) -> None:
        from geotower.ingest.yelp import YelpFilter, prepare_yelp

        cfg = resolve(config, set_ or ())
        flt = YelpFilter(city=city, state=state, bbox=_parse_bbox(bbox))
        report = prepare_yelp(business, reviews, out, flt, strict=strict, memory_limit=memory_limit, threads=threads)
        _console.print(f"[bold]{out}[/bold]: {report.businesses_kept} of {report.businesses_read} businesses, "
                       f"{report.reviews_kept} of {report.reviews_read} reviews, {report.users} users; "
                       f"skipped {report.skipped}; peak memory {report.peak_rss_mb:.0f} MB")
        if osm is not None:
            from geotower.geo.context import add_osm_features_to_dataset

            path = add_osm_features_to_dataset(out, osm, cfg.features, strict)
            _console.print(f"OSM context features added: {path}")

    @app.command("simulate", help="Simulate diners reviewing real places; writes Yelp-format business.json + "
                                  "review.json and ground_truth/ (see docs/simulator.md).")
    def simulate_cmd(
        places: Annotated[Path, typer.Option(help="csv/parquet: business_id, name, lat, lon, categories[, stars].")],
        out: Annotated[Path, typer.Option(help="Output folder.")],
        users: Annotated[int | None, typer.Option(help="Number of users (default: reviews / 10).")] = None,
        reviews: Annotated[int, typer.Option(help="Number of reviews to write.")] = 100_000,
        seed: Annotated[int, typer.Option(help="Random seed; same seed = byte-identical files.")] = 0,
        features: Annotated[Path | None, typer.Option(help="OSM context table keyed by business_id or item_id "
                                                           "(e.g. geo_feature_matrix.csv).")] = None,
    ) -> None:
        from geotower.ingest.simulate import SimConfig, simulate

        if reviews < 1 or (users is not None and users < 1):
            raise ConfigError("--reviews and --users must be >= 1")
        counts = simulate(places, out, SimConfig(n_reviews=reviews, n_users=users, seed=seed), features)
        _console.print(f"[bold]{out}[/bold]: {counts['reviews']} reviews by {counts['users']} users of "
                       f"{counts['places']} places (business.json, review.json, ground_truth/)")
