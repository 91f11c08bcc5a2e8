"""``geotower features osm``: OSM context columns for items, to a table file or merged into a dataset folder.

The dataset-folder IO lives here; :func:`geotower.geo.context.compute_osm_features` stays a computation over an
items frame.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from geotower import artifacts
from geotower import schema as S
from geotower.config import FeaturesConfig
from geotower.errors import ConfigError, DataError
from geotower.geo.context import compute_osm_features
from geotower.geo.layers import select_layers

__all__ = ["FeaturesResult", "add_osm_features_to_dataset", "find_items_table", "osm_features"]


@dataclass(frozen=True)
class FeaturesResult:
    """The feature columns computed, where they went, and how long it took."""

    features: pd.DataFrame  # item_id + the OSM columns
    merged_into: Path | None
    written_to: Path | None
    seconds: float


def find_items_table(path: str | Path) -> Path:
    """The items table: ``path`` itself if a file, else ``items.parquet|csv`` inside a dataset folder."""
    path = Path(path)
    if path.is_dir():
        for suffix in S.TABLE_SUFFIXES:
            if (path / f"{S.ITEMS_STEM}{suffix}").exists():
                return path / f"{S.ITEMS_STEM}{suffix}"
        raise DataError("dataset folder has no items.parquet or items.csv", path=path)
    if not path.exists():
        raise DataError("items file does not exist", path=path)
    return path


def add_osm_features_to_dataset(dataset_dir: Path, source: Path | Sequence[Path], cfg: FeaturesConfig,
                                strict: bool) -> Path:
    """Compute the features and merge them into the dataset folder's items table (atomic rewrite).

    Existing columns with the same names are replaced; other columns and the row order are kept.

    Returns:
        The path of the rewritten items table.
    """
    items_path = find_items_table(dataset_dir)
    if not Path(dataset_dir).is_dir():
        raise DataError("expected a dataset folder", path=dataset_dir)
    items = artifacts.read_table(items_path)
    try:
        feats = compute_osm_features(items, source, cfg, strict)
    except DataError as exc:
        if exc.path is None:
            exc.path = str(items_path)
            exc.args = (exc._format(),)
        raise
    names = [c for c in feats.columns if c != S.ITEM_ID]
    merged = pd.concat([items.drop(columns=[c for c in names if c in items.columns]),
                        feats[names].set_axis(items.index)], axis=1)
    with artifacts.staged_folder(dataset_dir, "dataset", keep_existing=True) as stage:  # atomic, like prepare
        artifacts.write_table(stage / items_path.name, merged)
    return items_path


def osm_features(items: Path, osm: Path | Sequence[Path], cfg: FeaturesConfig, *, out: Path | None, merge: bool,
                 strict: bool) -> FeaturesResult:
    """Compute the OSM columns of ``items`` (a table, or a dataset folder with ``merge``); write them to ``out``.

    Raises:
        ConfigError: neither ``out`` nor ``merge``, or ``merge`` without a dataset folder.
        DataError: unreadable items or OSM source.
    """
    if out is None and not merge:
        raise ConfigError("give --out FILE, or --merge with a dataset folder as --items")
    if merge and not items.is_dir():
        raise ConfigError(f"--merge needs a dataset folder as --items, got the file {items}")
    start = time.perf_counter()
    merged_into = None
    if merge:
        merged_into = add_osm_features_to_dataset(items, osm, cfg, strict)
        table = artifacts.read_table(merged_into)
        wanted = set(S.geo_feature_columns(cfg.radii, select_layers(cfg.layers)))
        feats = table[[S.ITEM_ID, *[c for c in table.columns if c in wanted]]]
    else:
        feats = compute_osm_features(artifacts.read_table(find_items_table(items)), osm, cfg, strict)
    if out is not None:
        artifacts.write_table(out, feats)
    return FeaturesResult(feats, merged_into, out, time.perf_counter() - start)
