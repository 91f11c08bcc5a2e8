"""Check-in and review logs of any shape -> a dataset folder (``geotower prepare checkins``).

A check-in log is one row per visit: who, where, and usually when and at which coordinates. Files are read with
DuckDB (CSV/TSV with or without a header, gzip-compressed or not, or Parquet; :mod:`geotower.ingest.text_table`),
every column as text, then parsed column by column in numpy/pandas (no per-row Python), so a bad value is reported
with its file, line and column.

Presets name the columns of the public data sets in their published layout (no header, tab-separated):

* ``foursquare-tsmc`` — Foursquare NYC/Tokyo (Yang et al., TSMC 2014), ``dataset_TSMC2014_{NYC,TKY}.txt``:
  user, venue, category id, category name, lat, lon, timezone offset (min), UTC time ``Tue Apr 03 18:00:09 +0000
  2012``.
* ``gowalla`` / ``brightkite`` — SNAP ``loc-{gowalla,brightkite}_totalCheckins.txt[.gz]``: user, ISO time
  ``2010-10-19T23:55:27Z``, lat, lon, location id.
* ``foursquare-global`` — Foursquare global-scale (Yang et al., TIST 2015 / WWW 2019),
  ``dataset_TIST2015_Checkins.txt``: user, venue, UTC time, timezone offset; the venues' coordinates come from the
  POI file (``--pois dataset_TIST2015_POIs.txt``: venue, lat, lon, category name, country code).

Decisions: every check-in stays one interaction row (its timestamp drives the temporal split and the trend prior;
repeated visits are repeated rows); a place's coordinates are the median of its rows' coordinates (the SNAP logs
repeat them per check-in); rows without a user or place id, and places without any valid coordinate (Brightkite
writes ``0.0 0.0`` for unknown), are dropped with a warning that says how many. A ``rating`` column, when mapped,
keeps the dataset-folder rules (``rating - rating_offset > positive_threshold`` is positive); without one every
check-in is a positive.
"""

from __future__ import annotations

import tomllib
import warnings
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from geotower import schema as S
from geotower.errors import DataError, GeotowerWarning
from geotower.ingest.dataset import DatasetSpec, read_spec, write_dataset
from geotower.ingest.text_table import data_lines, floats, ids_present, read_text_table, require_columns

CATEGORY = "category"
_TSMC_TIME = "%a %b %d %H:%M:%S %z %Y"


@dataclass(frozen=True)
class CheckinFormat:
    """Which columns hold what. Names refer to the header, or to ``names`` for a file without one."""

    user: str
    item: str
    time: str | None = None
    lat: str | None = None
    lon: str | None = None
    rating: str | None = None
    category: str | None = None
    names: tuple[str, ...] = ()  # column names of a header-less file, in order
    sep: str | None = None  # None: sniffed
    time_format: str | None = None  # strptime format; None: ISO dates or epoch seconds
    pois: PoiFormat | None = None  # a separate file with the places' coordinates (foursquare-global)


@dataclass(frozen=True)
class PoiFormat:
    """Layout of a separate places file."""

    item: str
    lat: str
    lon: str
    category: str | None = None
    names: tuple[str, ...] = ()
    sep: str | None = None


_SNAP = CheckinFormat("user", "location_id", time="time", lat="lat", lon="lon",
                      names=("user", "time", "lat", "lon", "location_id"), sep="\t")
PRESETS: dict[str, CheckinFormat] = {
    "foursquare-tsmc": CheckinFormat(
        "user_id", "venue_id", time="utc_time", lat="lat", lon="lon", category="venue_category_name",
        names=("user_id", "venue_id", "venue_category_id", "venue_category_name", "lat", "lon",
               "timezone_offset", "utc_time"), sep="\t", time_format=_TSMC_TIME),
    "gowalla": _SNAP,
    "brightkite": _SNAP,
    "foursquare-global": CheckinFormat(
        "user_id", "venue_id", time="utc_time", names=("user_id", "venue_id", "utc_time", "timezone_offset"),
        sep="\t", time_format=_TSMC_TIME,
        pois=PoiFormat("venue_id", "lat", "lon", category="venue_category_name",
                       names=("venue_id", "lat", "lon", "venue_category_name", "country_code"), sep="\t")),
}
MAPPING_KEYS = ("preset", "user", "item", "time", "lat", "lon", "rating", "category", "sep", "time_format", "pois")


@dataclass
class CheckinResult:
    """What ``prepare checkins`` wrote."""

    out_dir: Path
    n_checkins: int
    n_users: int
    n_items: int
    dropped: dict[str, int]


def resolve_format(preset: str | None = None, **columns: str | None) -> CheckinFormat:
    """A preset with column overrides, or the columns alone (``user`` and ``item`` then required).

    Raises:
        DataError: unknown preset, or neither a preset nor both ``user`` and ``item``.
    """
    given: dict[str, Any] = {k: v for k, v in columns.items() if v is not None}  # names checked just below
    unknown = set(given) - {f.name for f in fields(CheckinFormat)}
    if unknown:
        raise DataError(f"unknown check-in column option(s): {', '.join(sorted(unknown))}")
    if preset is not None:
        if preset not in PRESETS:
            raise DataError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}", column="preset")
        return replace(PRESETS[preset], **given)
    if "user" not in given or "item" not in given:
        raise DataError("name the user and item columns (--user COL --item COL) or pick a --preset "
                        f"({', '.join(PRESETS)})", column="user" if "user" not in given else "item")
    return CheckinFormat(**given)


def mapping_from_toml(path: str | Path) -> tuple[dict[str, str], DatasetSpec]:
    """The ``[checkins]`` column mapping of a ``dataset.toml`` plus the rest of it as a :class:`DatasetSpec`."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DataError(f"cannot read the TOML: {exc}", path=path) from None
    mapping = raw.get("checkins", {})
    bad = [k for k in mapping if k not in MAPPING_KEYS]
    if bad:
        raise DataError(f"unknown key checkins.{bad[0]}; allowed: {', '.join(MAPPING_KEYS)}", path=path,
                        column=bad[0])
    return {k: str(v) for k, v in mapping.items()}, read_spec(path)


# --- reading ---------------------------------------------------------------------------------------
def _times(df: pd.DataFrame, fmt: CheckinFormat, path: Path, lines: np.ndarray) -> np.ndarray:
    """Epoch seconds (int64) from epoch numbers, ISO dates or ``fmt.time_format``."""
    assert fmt.time is not None
    text = df[fmt.time].str.strip()
    numeric = pd.to_numeric(text, errors="coerce")
    if len(text) and numeric.notna().all():
        epoch: np.ndarray = numeric.to_numpy().astype(np.int64)
        return epoch
    parsed = pd.to_datetime(text, format=fmt.time_format or "mixed", errors="coerce", utc=True)
    bad = parsed.isna().to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        want = fmt.time_format or "an ISO date or epoch seconds"
        raise DataError(f"cannot parse time {text.iloc[i]!r} (expected {want})", path=path, row=int(lines[i]),
                        column=fmt.time)
    seconds: np.ndarray = (parsed - pd.Timestamp("1970-01-01", tz="UTC")).dt.total_seconds().to_numpy()
    return seconds.astype(np.int64)


def _places(ids: pd.Series, lat: np.ndarray, lon: np.ndarray, category: pd.Series | None) -> pd.DataFrame:
    """One row per place: median coordinate of its valid rows, its most frequent category."""
    ok = np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180) & ~((lat == 0) & (lon == 0))
    coords = pd.DataFrame({S.ITEM_ID: ids[ok].to_numpy(), S.LAT: lat[ok], S.LON: lon[ok]})
    items = coords.groupby(S.ITEM_ID, sort=True)[[S.LAT, S.LON]].median().reset_index()
    if category is not None:
        cats = pd.DataFrame({S.ITEM_ID: ids.to_numpy(), CATEGORY: category.fillna("").to_numpy(dtype=object)})
        top = cats.groupby([S.ITEM_ID, CATEGORY]).size().reset_index(name="n")
        top = top.sort_values(["n", CATEGORY], ascending=[False, True]).drop_duplicates(S.ITEM_ID)
        items = items.merge(top[[S.ITEM_ID, CATEGORY]], on=S.ITEM_ID, how="left")
        items[CATEGORY] = items[CATEGORY].fillna("")
    return items


def _poi_table(path: Path, fmt: PoiFormat) -> pd.DataFrame:
    df = read_text_table(path, fmt.names, fmt.sep)
    require_columns(df, path, [c for c in (fmt.item, fmt.lat, fmt.lon, fmt.category) if c])
    keep = ids_present(df, [fmt.item])
    lines = data_lines(path, not fmt.names, len(df))[keep]
    df = df[keep].reset_index(drop=True)
    cat = df[fmt.category] if fmt.category else None
    return _places(df[fmt.item].str.strip(), floats(df, fmt.lat, path, lines), floats(df, fmt.lon, path, lines),
                   cat)


def read_checkins(path: str | Path, fmt: CheckinFormat, pois: str | Path | None = None
                  ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """(interactions, items, dropped counts) of a check-in log, in dataset-folder columns.

    Raises:
        DataError: unreadable file, a missing column, a value that is not a number/time (file, line, column).
    """
    path = Path(path)
    if (fmt.pois is not None) != (pois is not None):
        raise DataError("this format takes the places' coordinates from a separate file: pass --pois FILE"
                        if pois is None else "--pois needs a preset whose POI file layout is known "
                        "(--preset foursquare-global)", path=path)
    df = read_text_table(path, fmt.names, fmt.sep)
    require_columns(df, path, [c for c in (fmt.user, fmt.item, fmt.time, fmt.lat, fmt.lon, fmt.rating,
                                            fmt.category) if c])
    ok = ids_present(df, [fmt.user, fmt.item])
    dropped = {"rows without a user or place id": int((~ok).sum())}
    lines = data_lines(path, not fmt.names, len(df))[ok]
    df = df[ok].reset_index(drop=True)
    inter = pd.DataFrame({S.USER_ID: df[fmt.user].str.strip().to_numpy(dtype=object),
                          S.ITEM_ID: df[fmt.item].str.strip().to_numpy(dtype=object)})
    if fmt.time:
        inter[S.TIMESTAMP] = _times(df, fmt, path, lines)
    if fmt.rating:
        inter[S.RATING] = floats(df, fmt.rating, path, lines)
        missing = np.isnan(inter[S.RATING].to_numpy())
        dropped["rows without a rating"] = int(missing.sum())
    if fmt.pois is not None and pois is not None:
        places = _poi_table(Path(pois), fmt.pois)
    elif fmt.lat and fmt.lon:
        places = _places(inter[S.ITEM_ID], floats(df, fmt.lat, path, lines), floats(df, fmt.lon, path, lines),
                         df[fmt.category] if fmt.category else None)
    else:
        places = pd.DataFrame({S.ITEM_ID: np.unique(inter[S.ITEM_ID].to_numpy().astype(str))})
    keep = np.array(inter[S.ITEM_ID].isin(places[S.ITEM_ID]).to_numpy(), dtype=bool)
    dropped["check-ins at places without coordinates"] = int((~keep).sum())
    if fmt.rating:
        keep &= ~np.isnan(inter[S.RATING].to_numpy(dtype=float))
    inter = inter[keep].reset_index(drop=True)
    # the distinct ids: pandas' isin on Arrow strings converts each value it is given in Python
    places = places[places[S.ITEM_ID].isin(inter[S.ITEM_ID].unique())].reset_index(drop=True)
    if len(inter) == 0:
        raise DataError("no check-ins left (every row lacked an id or its place lacked coordinates)", path=path)
    return inter, places, dropped


def prepare_checkins(path: str | Path, out_dir: str | Path, fmt: CheckinFormat, pois: str | Path | None = None,
                     spec: DatasetSpec | None = None) -> CheckinResult:
    """Read a check-in log and write a dataset folder (``interactions``, ``items``, ``dataset.toml``).

    The category column, when there is one, becomes a categorical item feature.
    """
    inter, places, dropped = read_checkins(path, fmt, pois)
    spec = spec or DatasetSpec()
    if CATEGORY in places.columns and CATEGORY not in spec.items.categorical:
        spec = replace(spec, items=replace(spec.items, categorical=(*spec.items.categorical, CATEGORY)))
    for what, n in dropped.items():
        if n:
            warnings.warn(f"{path}: dropped {n} {what}", GeotowerWarning, stacklevel=2)
    write_dataset(out_dir, inter, places, spec)
    return CheckinResult(Path(out_dir), len(inter), int(inter[S.USER_ID].nunique()), len(places),
                         {k: v for k, v in dropped.items() if v})
