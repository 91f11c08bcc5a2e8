"""``geotower simulate``: diners reviewing real places, written as Yelp-format files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from geotower._cli.options import JsonOpt, json_result
from geotower.errors import ConfigError

__all__ = ["simulate"]

HELP = ("Simulate diners reviewing real places; writes Yelp-format business.json + review.json and ground_truth/ "
        "(see docs/simulator.md).")
_console = Console(soft_wrap=True)


@json_result
def simulate(
    places: Annotated[Path, typer.Option(help="csv/parquet: business_id, name, lat, lon, categories[, stars].")],
    out: Annotated[Path, typer.Option(help="Output folder.")],
    users: Annotated[int | None, typer.Option(help="Number of users (default: reviews / 10).")] = None,
    reviews: Annotated[int, typer.Option(help="Number of reviews to write.")] = 100_000,
    seed: Annotated[int, typer.Option(help="Random seed; same seed = byte-identical files.")] = 0,
    features: Annotated[Path | None, typer.Option(help="OSM context table keyed by business_id or item_id "
                                                       "(e.g. geo_feature_matrix.csv).")] = None,
    as_json: JsonOpt = False,
) -> dict[str, Any]:
    from geotower.ingest.simulate import SimConfig
    from geotower.ingest.simulate import simulate as run_simulation

    if reviews < 1 or (users is not None and users < 1):
        raise ConfigError("--reviews and --users must be >= 1")
    counts = run_simulation(places, out, SimConfig(n_reviews=reviews, n_users=users, seed=seed), features)
    _console.print(f"[bold]{out}[/bold]: {counts['reviews']} reviews by {counts['users']} users of "
                   f"{counts['places']} places (business.json, review.json, ground_truth/)")
    return {"out": out, "business_file": out / "business.json", "review_file": out / "review.json",
            "ground_truth": out / "ground_truth", **counts}
