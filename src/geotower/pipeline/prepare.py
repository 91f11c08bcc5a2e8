"""``geotower prepare yelp``: raw Yelp files in, a dataset folder out, optionally with OSM context columns."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from geotower.config import FeaturesConfig
from geotower.ingest.yelp import PrepareReport, YelpFilter, prepare_yelp
from geotower.pipeline.features import add_osm_features_to_dataset

__all__ = ["PrepareResult", "YelpInputs", "prepare_yelp_dataset"]


@dataclass(frozen=True)
class YelpInputs:
    """The two Yelp JSON-lines files and the DuckDB resources to read them with."""

    business: Path
    reviews: Path
    memory_limit: str = "1GB"
    threads: int | None = None


@dataclass(frozen=True)
class PrepareResult:
    report: PrepareReport
    osm_items: Path | None  # the items table the OSM columns were merged into


def prepare_yelp_dataset(inputs: YelpInputs, out: Path, flt: YelpFilter, *, strict: bool = False,
                         osm: Path | None = None, features: FeaturesConfig | None = None) -> PrepareResult:
    """Write the dataset folder ``out`` from Yelp files; with ``osm``, merge the context features into its items."""
    report = prepare_yelp(inputs.business, inputs.reviews, out, flt, strict=strict,
                          memory_limit=inputs.memory_limit, threads=inputs.threads)
    osm_items = None
    if osm is not None:
        osm_items = add_osm_features_to_dataset(out, osm, features or FeaturesConfig(), strict)
    return PrepareResult(report, osm_items)
