"""Yelp Open Dataset → dataset folder, with DuckDB SQL streaming over the JSON-lines files as Yelp ships them.

The review file is 5 GB / 7M lines, so it never passes through pandas: :mod:`geotower.ingest.jsonlines` reads each
file through DuckDB into a narrow table (line, ids, stars, epoch seconds, error reason) under DuckDB's
``memory_limit`` (spilling to a temp folder), and the interactions parquet is written by ``COPY`` to a temp name and
renamed. The official download (``yelp_dataset.tar`` or its folder) is unpacked by
:mod:`geotower.ingest.yelp_download`.

Which businesses are kept (the *restaurant rule*): a business is kept when its ``categories`` string, split on
commas and trimmed, contains ``"Restaurants"`` or ``"Food"`` as a whole token (case-sensitive; these are Yelp's two
root categories for eating places). So ``"Food, Bubble Tea, Coffee & Tea, Bakeries"``, ``"Restaurants, Sushi Bars"``
and ``"Grocery, Food"`` are kept, while ``"Fast Food"`` alone, ``"Seafood Markets"`` and a missing (null)
``categories`` are not: "Fast Food" and "Seafood" are different tokens from "Food". Then the optional filters apply:
``city`` / ``state`` (case-insensitive exact match after trimming) and ``bbox`` (lon/lat, inclusive).

Bad input: a malformed JSON line, a line that is not an object, a missing required field (business: business_id,
latitude, longitude, stars; review: user_id, business_id, stars, date) or an invalid value (coordinates out of
range, review stars outside 1..5, unparseable date), a line that is not UTF-8 text or longer than 2 MB, is skipped
and reported in one warning per kind with the file and the first line numbers; with ``strict`` the first such line
raises :class:`DataError` naming file, line and field. Blank lines are ignored; a truncated ``.gz`` file is an
error.
"""

from __future__ import annotations

import dataclasses
import math
import re
import resource
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from geotower import artifacts
from geotower import schema as S
from geotower.errors import ConfigError, DataError, GeotowerWarning
from geotower.ingest.dataset import DatasetSpec, TableSpec
from geotower.ingest.jsonlines import JsonField, load_jsonl, report_errors, sql_str

RESTAURANT_TOKENS: tuple[str, ...] = ("Restaurants", "Food")
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class YelpFilter:
    """Which businesses to keep, beyond the restaurant rule.

    Args:
        city: case-insensitive exact city name, e.g. "Philadelphia".
        state: case-insensitive exact state code, e.g. "PA".
        bbox: (min_lon, min_lat, max_lon, max_lat), inclusive.
        categories: whole comma-separated tokens of which one must be present.
    """

    city: str | None = None
    state: str | None = None
    bbox: tuple[float, float, float, float] | None = None
    categories: tuple[str, ...] = RESTAURANT_TOKENS


@dataclass
class PrepareReport:
    """What ``prepare_yelp`` read, kept and skipped (counts), and the process's peak memory."""

    out_dir: Path
    businesses_read: int
    businesses_kept: int
    reviews_read: int
    reviews_kept: int
    users: int
    skipped: dict[str, int] = field(default_factory=dict)
    peak_rss_mb: float = 0.0


_BUSINESS_FIELDS = (
    JsonField("business_id", "business_id"),
    JsonField("name", "name", required=False),
    JsonField("city", "city", required=False),
    JsonField("state", "state", required=False),
    JsonField("latitude", "lat", "TRY_CAST({v} AS DOUBLE)", "abs({v}) <= 90", problem="latitude not in [-90, 90]"),
    JsonField("longitude", "lon", "TRY_CAST({v} AS DOUBLE)", "abs({v}) <= 180",
              problem="longitude not in [-180, 180]"),
    JsonField("stars", "stars", "TRY_CAST({v} AS DOUBLE)", "isfinite({v})", problem="stars is not a number"),
    JsonField("categories", "categories", required=False),
)
_REVIEW_FIELDS = (
    JsonField("user_id", "user_id"),
    JsonField("business_id", "business_id"),
    JsonField("stars", "rating", "TRY_CAST({v} AS DOUBLE)", "{v} BETWEEN 1 AND 5", problem="stars not in 1..5"),
    JsonField("date", "ts", f"CAST(epoch(TRY_STRPTIME({{v}}, '{DATE_FORMAT}')) AS BIGINT)", "{v} IS NOT NULL",
              problem=f"date is not '{DATE_FORMAT.replace('%', '')}'"),
)


def _dedupe_businesses(con: duckdb.DuckDBPyConnection, path: Path, strict: bool) -> int:
    """A business_id seen twice keeps its first line; later lines are reported like bad lines."""
    dup = con.execute("SELECT count(*), min(line) FROM (SELECT line, row_number() OVER (PARTITION BY business_id "
                      "ORDER BY line) AS k FROM business WHERE err IS NULL) WHERE k > 1").fetchone()
    n, line = (int(dup[0]), int(dup[1] or 0)) if dup is not None else (0, 0)
    if n == 0:
        return 0
    if strict:
        raise DataError("duplicate business_id", path=path, row=line, column="business_id", row_kind="line")
    warnings.warn(f"{path}: skipped {n} line(s) repeating an earlier business_id (first at line {line})",
                  GeotowerWarning, stacklevel=3)
    con.execute("DELETE FROM business WHERE err IS NULL AND line IN (SELECT line FROM (SELECT line, row_number() "
                "OVER (PARTITION BY business_id ORDER BY line) AS k FROM business WHERE err IS NULL) WHERE k > 1)")
    return n


def _keep_condition(flt: YelpFilter) -> str:
    tokens = "[" + ", ".join(sql_str(t) for t in flt.categories) + "]"
    conds = ["err IS NULL",
             f"coalesce(list_has_any(list_transform(string_split(categories, ','), x -> trim(x)), {tokens}), false)"]
    if flt.city is not None:
        conds.append(f"lower(trim(city)) = lower({sql_str(flt.city.strip())})")
    if flt.state is not None:
        conds.append(f"lower(trim(state)) = lower({sql_str(flt.state.strip())})")
    if flt.bbox is not None:
        min_lon, min_lat, max_lon, max_lat = (float(v) for v in flt.bbox)
        conds.append(f"lon BETWEEN {min_lon!r} AND {max_lon!r} AND lat BETWEEN {min_lat!r} AND {max_lat!r}")
    return " AND ".join(conds)


def check_options(flt: YelpFilter, memory_limit: str, threads: int | None) -> None:
    """Options checked before anything is read: one-line ConfigErrors (``--bbox nan,...`` reached the SQL text)."""
    if flt.bbox is not None:
        box = flt.bbox
        if (len(box) != 4 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in box)
                or box[0] > box[2] or box[1] > box[3] or not (abs(box[0]) <= 180 and abs(box[2]) <= 180
                                                              and abs(box[1]) <= 90 and abs(box[3]) <= 90)):
            raise ConfigError(f"--bbox {box!r}: expected finite minlon,minlat,maxlon,maxlat with min <= max, "
                              "lon in [-180, 180], lat in [-90, 90]")
    if not re.fullmatch(r"\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*", memory_limit, re.IGNORECASE):
        raise ConfigError(f"--memory-limit {memory_limit!r}: expected a size such as 512MB or 4GB")
    if threads is not None and not 1 <= threads <= 1024:
        raise ConfigError(f"--threads {threads}: expected a number of threads in 1..1024")


def _connect(tmp: Path, memory_limit: str, threads: int | None) -> duckdb.DuckDBPyConnection:
    """In-memory database whose buffers spill to ``tmp`` beyond ``memory_limit`` (cheaper than an on-disk file)."""
    con = duckdb.connect()
    con.execute(f"SET memory_limit = {sql_str(memory_limit)}")
    con.execute(f"SET temp_directory = {sql_str(str(tmp / 'spill'))}")
    con.execute("SET preserve_insertion_order = true")
    if threads is not None:
        con.execute(f"SET threads = {int(threads)}")
    return con


def _write_items(con: duckdb.DuckDBPyConnection, out: Path) -> None:
    items = con.execute(f"SELECT business_id AS {S.ITEM_ID}, name AS {S.NAME}, lat AS {S.LAT}, lon AS {S.LON}, "
                        "stars, categories FROM kept ORDER BY line").df()
    artifacts.write_table(out / f"{S.ITEMS_STEM}.parquet", items)


def _write_interactions(con: duckdb.DuckDBPyConnection, out: Path) -> tuple[int, int]:
    """COPY kept reviews (file order) straight to parquet through a temp name; returns (rows, distinct users)."""
    query = (f"SELECT user_id AS {S.USER_ID}, business_id AS {S.ITEM_ID}, rating AS {S.RATING}, ts AS {S.TIMESTAMP} "
             "FROM review WHERE err IS NULL AND business_id IN (SELECT business_id FROM kept) ORDER BY line")

    def copy(tmp: Path) -> None:
        con.execute(f"COPY ({query}) TO {sql_str(str(tmp))} (FORMAT PARQUET, COMPRESSION ZSTD)")

    target = out / f"{S.INTERACTIONS_STEM}.parquet"
    artifacts.write_with(target, copy)
    counts = con.execute(f"SELECT count(*), count(DISTINCT {S.USER_ID}) FROM read_parquet({sql_str(str(target))})"
                         ).fetchone()
    return (int(counts[0]), int(counts[1])) if counts is not None else (0, 0)


def yelp_spec() -> DatasetSpec:
    """dataset.toml of a prepared Yelp folder: centered rating = stars - 2, positive when > 0 (stars >= 3)."""
    return DatasetSpec(rating_offset=2.0, positive_threshold=0.0,
                       items=TableSpec(multi_label={"categories": ", "}))


def prepare_yelp(business: str | Path, reviews: str | Path, out: str | Path, flt: YelpFilter | None = None,
                 strict: bool = False, memory_limit: str = "1GB", threads: int | None = None) -> PrepareReport:
    """Turn Yelp's ``business.json`` + ``review.json`` into a dataset folder (items, interactions, dataset.toml).

    Args:
        business: Yelp business JSON-lines file (plain or .gz).
        reviews: Yelp review JSON-lines file (plain or .gz); streamed, never loaded whole.
        out: dataset folder to write (created; existing tables are replaced atomically).
        flt: restaurant rule and city/state/bbox filters; default keeps every restaurant.
        strict: raise on the first bad line instead of skipping it with a warning.
        memory_limit: DuckDB memory cap, e.g. "1GB"; larger data spills to a temp folder under ``out``.
        threads: DuckDB threads; None = DuckDB's default (all cores).

    Returns:
        Counts of what was read, kept and skipped.

    Raises:
        DataError: unreadable file, bad line under ``strict``, or nothing left after filtering.
    """
    flt = flt or YelpFilter()
    business, reviews, out = Path(business), Path(reviews), Path(out)
    check_options(flt, memory_limit, threads)
    for path in (business, reviews):
        _check_input_file(path)
    with artifacts.staged_folder(out, "dataset", inputs=[business.parent, reviews.parent]) as stage:
        tmp = stage / ".spill"  # hidden: never listed in complete.json, deleted with a failed stage
        tmp.mkdir()
        try:
            con = _connect(tmp, memory_limit, threads)
            try:
                report = _prepare(con, business, reviews, stage, flt, strict)
            finally:
                con.close()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return dataclasses.replace(report, out_dir=out)


def _check_input_file(path: Path) -> None:
    if path.is_dir():
        raise DataError("is a folder, expected a Yelp JSON-lines file", path=path)
    if not path.exists():
        raise DataError("file does not exist", path=path)


def _prepare(con: duckdb.DuckDBPyConnection, business: Path, reviews: Path, out: Path, flt: YelpFilter,
             strict: bool) -> PrepareReport:
    n_business = load_jsonl(con, "business", business, _BUSINESS_FIELDS)
    skipped = {"business_bad_lines": report_errors(con, "business", business, strict, "business"),
               "business_duplicates": _dedupe_businesses(con, business, strict)}
    con.execute(f"CREATE TABLE kept AS SELECT * FROM business WHERE {_keep_condition(flt)}")
    n_kept = int(con.execute("SELECT count(*) FROM kept").fetchone()[0])  # type: ignore[index]
    skipped["business_filtered"] = n_business - skipped["business_bad_lines"] - skipped["business_duplicates"] - n_kept
    if n_kept == 0:
        raise DataError(f"no business left after the restaurant rule ({' or '.join(flt.categories)}) and the "
                        f"city/state/bbox filters", path=business)
    n_reviews = load_jsonl(con, "review", reviews, _REVIEW_FIELDS)
    skipped["review_bad_lines"] = report_errors(con, "review", reviews, strict, "review")
    has_any = con.execute("SELECT 1 FROM review WHERE err IS NULL AND business_id IN "
                          "(SELECT business_id FROM kept) LIMIT 1").fetchone()
    if has_any is None:
        raise DataError("no review left: none refers to a kept business", path=reviews, column="business_id")
    _write_items(con, out)
    n_inter, n_users = _write_interactions(con, out)
    skipped["review_other_business"] = n_reviews - skipped["review_bad_lines"] - n_inter
    artifacts.write_text(out / S.DATASET_TOML, yelp_spec().to_toml())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    return PrepareReport(out, n_business, n_kept, reviews_read=n_reviews, reviews_kept=n_inter, users=n_users,
                         skipped=skipped, peak_rss_mb=peak)
