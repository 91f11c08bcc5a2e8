"""Read a JSON-lines file with DuckDB into a narrow table of typed fields, line numbers and error reasons.

A JSON-lines file can be larger than memory (Yelp's review file is 5 GB / 7M lines), so it never passes through
pandas: DuckDB reads each file as raw text lines (``read_csv`` with one VARCHAR column and a delimiter that cannot
occur in valid JSON), parses each line once, in parallel, with ``try(json_transform(...))`` (NULL = malformed) into a
table whose ``rowid + 1`` is the line number (insertion order is preserved), then types and checks the fields in SQL
(:class:`JsonField`: cast, check, problem text). Only that table (line, fields, error reason and field) is kept,
under the connection's ``memory_limit``. A line that is not UTF-8 text or longer than 2 MB is recorded like any
other bad line; blank lines are ignored but counted. A truncated ``.gz`` file is an error (checked by decompressing
it to its end beside the read). A file that mixes ``\\n`` and ``\\r\\n`` line endings gets wrong line numbers.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from geotower.errors import DataError, GeotowerWarning

__all__ = ["BAD", "JsonField", "load_jsonl", "one_line", "report_errors", "sql_str"]

_MAX_LINE_BYTES = 2 * 1024 * 1024  # DuckDB reads 16x this per buffer; Yelp lines are < 10 KB
_SHOW_LINES = 5  # line numbers quoted per warning
BAD = "err IS NOT NULL AND err <> 'blank'"  # blank lines are ignored, but still counted for line numbers


@dataclass(frozen=True)
class JsonField:
    """One JSON field: its name, the SQL that turns the extracted text ``{v}`` into a value, and its check."""

    name: str
    alias: str
    cast: str = "{v}"
    valid: str | None = None  # SQL over the cast value; NULL/false = invalid
    required: bool = True
    problem: str = "invalid value"


def sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _read_lines_sql(path: Path, table: str) -> str:
    """Raw lines: byte 0x01 never occurs unescaped in valid JSON, so each line is one VARCHAR value.

    A line that is not UTF-8 or longer than ``_MAX_LINE_BYTES`` is left out and recorded, with its line number, in
    ``{table}_rej`` (DuckDB's rejects table), so it is skipped and reported like any other bad line.
    """
    return (f"read_csv({sql_str(str(path))}, columns={{'l': 'VARCHAR'}}, delim='\x01', quote='', escape='', "
            f"header=false, auto_detect=false, strict_mode=false, max_line_size={_MAX_LINE_BYTES}, "
            f"ignore_errors=true, store_rejects=true, rejects_table='{table}_rej', "
            f"rejects_scan='{table}_rejscan')")


_REJECT_REASONS = {"INVALID ENCODING": "not UTF-8 text", "LINE SIZE OVER MAXIMUM":
                   f"line longer than {_MAX_LINE_BYTES // (1024 * 1024)} MB"}


def _raw_sql(path: Path, fields: Sequence[JsonField], table: str) -> str:
    """Lines parsed once, in parallel: ``s`` is NULL for malformed JSON; ``obj`` says the line is a JSON object.

    Materialised with ``preserve_insertion_order``, so the table's ``rowid + 1`` is the line number (a
    ``row_number()`` window instead costs about twice the CPU). Referencing a parsed value several times inside
    one query would re-parse it per reference, hence the table.
    """
    schema = json.dumps({f.name: "VARCHAR" for f in fields})
    return (f"SELECT coalesce(trim(l), '') = '' AS blank, starts_with(ltrim(l), '{{') AS obj, "
            f"try(json_transform(l, {sql_str(schema)})) AS s FROM {_read_lines_sql(path, table)}")


def _typed_sql(raw: str, fields: Sequence[JsonField]) -> str:
    """Typed fields from table ``raw``, plus ``err``/``err_col`` naming the first problem (NULL when fine)."""
    text = [f"struct_extract(s, {sql_str(f.name)})" for f in fields]
    values = [f.cast.format(v=t) for f, t in zip(fields, text, strict=True)]
    cases = ["WHEN blank THEN 'blank'", "WHEN s IS NULL OR NOT obj THEN 'malformed JSON (or not an object)'"]
    cols = ["WHEN blank OR s IS NULL OR NOT obj THEN NULL"]
    for f, t, value in zip(fields, text, values, strict=True):
        if f.required:
            cases.append(f"WHEN {t} IS NULL THEN 'missing field'")
            cols.append(f"WHEN {t} IS NULL THEN {sql_str(f.name)}")
        if f.valid is not None:
            check = f"{t} IS NOT NULL AND NOT coalesce({f.valid.format(v=value)}, false)"
            cases.append(f"WHEN {check} THEN {sql_str(f.problem)}")
            cols.append(f"WHEN {check} THEN {sql_str(f.name)}")
    selected = ", ".join(f"{v} AS {f.alias}" for f, v in zip(fields, values, strict=True))
    return (f"SELECT line, {selected}, CASE {' '.join(cases)} END AS err, "
            f"CASE {' '.join(cols)} END AS err_col FROM {raw}")


def load_jsonl(con: duckdb.DuckDBPyConnection, table: str, path: Path, fields: Sequence[JsonField]) -> int:
    """Parse ``path`` into table ``table``; returns the number of non-blank lines."""
    if path.is_dir():
        raise DataError("is a folder, expected a JSON-lines file", path=path)
    if not path.is_file():
        raise DataError("file does not exist", path=path)
    gz_check = _GzipCheck(path)  # runs beside DuckDB's read (zlib releases the GIL)
    try:
        con.execute(f"CREATE TABLE {table}_read AS {_raw_sql(path, fields, table)}")
    except duckdb.Error as exc:
        raise DataError(f"cannot read as JSON lines: {one_line(exc)}", path=path) from None
    finally:
        gz_check.join()
    _number_lines(con, table)
    con.execute(f"CREATE TABLE {table} AS {_typed_sql(f'{table}_raw', fields)}")
    reasons = " ".join(f"WHEN {sql_str(k)} THEN {sql_str(v)}" for k, v in _REJECT_REASONS.items())
    con.execute(f"INSERT INTO {table} (line, err) SELECT line, CASE error_type {reasons} ELSE 'unreadable line' "
                f"END FROM {table}_rej")
    con.execute(f"DROP TABLE {table}_raw")
    count = con.execute(f"SELECT count(*) FROM {table} WHERE err IS DISTINCT FROM 'blank'").fetchone()
    return int(count[0]) if count is not None else 0


def one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())[:300]


def _number_lines(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """``{table}_raw`` = the read lines with their line numbers in the file, counting the rejected ones.

    The r-th read line (``rowid + 1``, insertion order is preserved) sits at line r + (number of rejected lines
    before it); with the rejected lines L_1 < L_2 < ... that count is the largest j with L_j - j < r (ASOF join).
    """
    con.execute(f"CREATE TABLE {table}_k AS SELECT line - row_number() OVER (ORDER BY line) AS k, "
                f"row_number() OVER (ORDER BY line) AS j FROM {table}_rej")
    if con.execute(f"SELECT count(*) FROM {table}_k").fetchone() == (0,):
        con.execute(f"CREATE TABLE {table}_raw AS SELECT rowid + 1 AS line, * FROM {table}_read")
    else:
        con.execute(f"CREATE TABLE {table}_raw AS SELECT r.rowid + 1 + coalesce(k.j, 0) AS line, r.* "
                    f"FROM {table}_read r ASOF LEFT JOIN {table}_k k ON r.rowid + 1 > k.k ORDER BY r.rowid")
    con.execute(f"DROP TABLE {table}_read")
    con.execute(f"DROP TABLE {table}_k")


class _GzipCheck:
    """Decompress a ``.gz`` file to its end in a thread: DuckDB reads a truncated gzip file without an error
    (a cut review file gave exit 0 with 42 % of the reviews), Python's gzip raises on a missing end."""

    def __init__(self, path: Path) -> None:
        import threading

        self.path = path
        self.error: Exception | None = None
        self._thread: threading.Thread | None = None
        if path.suffix == ".gz":
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        import gzip
        import zlib

        try:
            with gzip.open(self.path, "rb") as f:
                while f.read(1 << 24):
                    pass
        except (EOFError, OSError, zlib.error) as exc:
            self.error = exc

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()
        if self.error is not None:
            raise DataError(f"the gzip file is truncated or corrupt ({one_line(self.error)}); download it again",
                            path=self.path)


def report_errors(con: duckdb.DuckDBPyConnection, table: str, path: Path, strict: bool, what: str) -> int:
    """Warn once per (problem, field) with the first line numbers; with ``strict`` raise on the first bad line."""
    if strict:
        first = con.execute(f"SELECT line, err, err_col FROM {table} WHERE {BAD} ORDER BY line LIMIT 1"
                            ).fetchone()
        if first is not None:
            raise DataError(str(first[1]), path=path, row=int(first[0]), column=first[2], row_kind="line")
        return 0
    rows = con.execute(f"SELECT err, err_col, count(*), list(line ORDER BY line)[1:{_SHOW_LINES}] FROM {table} "
                       f"WHERE {BAD} GROUP BY err, err_col ORDER BY min(line)").fetchall()
    for err, col, n, lines in rows:
        where = f", field {col!r}" if col else ""
        warnings.warn(f"{path}: skipped {n} {what} line(s): {err}{where} (line {', '.join(map(str, lines))}"
                      f"{', ...' if n > len(lines) else ''})", GeotowerWarning, stacklevel=3)
    return sum(int(r[2]) for r in rows)
