"""``geotower prepare yelp``: raw Yelp files in, a dataset folder out, optionally with OSM context columns."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from geotower import artifacts
from geotower.config import FeaturesConfig
from geotower.errors import ConfigError
from geotower.ingest.yelp import PrepareReport, YelpFilter, check_options, prepare_yelp
from geotower.ingest.yelp_download import yelp_files
from geotower.pipeline.features import add_osm_features_to_dataset

__all__ = ["PrepareResult", "YelpInputs", "prepare_yelp_dataset"]


@dataclass(frozen=True)
class YelpInputs:
    """Where the Yelp data is (the two JSON-lines files, or the official download) and how to read it.

    Give either ``business`` and ``reviews``, or ``download``: ``yelp_dataset.tar`` or its extracted folder.
    """

    business: Path | None = None
    reviews: Path | None = None
    memory_limit: str = "1GB"
    threads: int | None = None
    download: Path | None = None


@dataclass(frozen=True)
class PrepareResult:
    report: PrepareReport
    osm_items: Path | None  # the items table the OSM columns were merged into


@contextlib.contextmanager
def _json_files(inputs: YelpInputs, out: Path) -> Iterator[tuple[Path, Path]]:
    """The two JSON-lines paths; an archive's members are copied beside ``out`` for the duration."""
    files = (inputs.business, inputs.reviews)
    if inputs.download is not None:
        if any(f is not None for f in files):
            raise ConfigError("give either the Yelp download (DOWNLOAD) or --business and --reviews, not both")
        with yelp_files(inputs.download, artifacts.check_output_dir(out).parent) as found:
            yield found
        return
    business, reviews = files
    if business is None or reviews is None:
        raise ConfigError("give the Yelp download (yelp_dataset.tar or its folder) or both --business and "
                          "--reviews")
    yield business, reviews


def prepare_yelp_dataset(inputs: YelpInputs, out: Path, flt: YelpFilter, *, strict: bool = False,
                         osm: Path | None = None, features: FeaturesConfig | None = None) -> PrepareResult:
    """Write the dataset folder ``out`` from Yelp files; with ``osm``, merge the context features into its items."""
    check_options(flt, inputs.memory_limit, inputs.threads)  # before a multi-GB copy out of an archive
    with _json_files(inputs, out) as (business, reviews):
        report = prepare_yelp(business, reviews, out, flt, strict=strict, memory_limit=inputs.memory_limit,
                              threads=inputs.threads)
    osm_items = None
    if osm is not None:
        osm_items = add_osm_features_to_dataset(out, osm, features or FeaturesConfig(), strict)
    return PrepareResult(report, osm_items)
