"""Any delimited or Parquet file as text columns, and its cells parsed with errors that name file, line and column.

Read with DuckDB (CSV/TSV with or without a header, gzip-compressed or not, or Parquet), every column as text so
nothing is guessed wrongly; :mod:`geotower.ingest.checkins` then parses the columns it maps, in numpy/pandas.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from geotower.errors import DataError


def read_text_table(path: Path, names: tuple[str, ...], sep: str | None) -> pd.DataFrame:
    """Every column as text (so nothing is guessed wrongly), header-less when ``names`` are given."""
    if not path.exists():
        raise DataError("file does not exist", path=path)
    lower = path.name.lower()
    con = duckdb.connect()
    try:
        if lower.endswith((".parquet", ".pq")):
            rel = con.sql("SELECT * FROM read_parquet(?)", params=[str(path)])
            return rel.df().astype(object).where(lambda d: d.notna(), None).astype("string")
        opts = ["all_varchar = true", f"header = {str(not names).lower()}", "compression = 'auto'"]
        params: list[object] = [str(path)]
        if names:
            opts.append("names = ?")
            params.append(list(names))
        if sep is None and lower.endswith((".tsv", ".tsv.gz", ".txt", ".txt.gz")):
            sep = "\t"
        if sep is not None:
            opts.append("delim = ?")
            params.append(sep)
        sql = f"SELECT * FROM read_csv(?, {', '.join(opts)}{{}})"
        try:
            res = con.execute(sql.format(""), params)
        except duckdb.InvalidInputException as exc:
            if "unicode" not in str(exc).lower() and "utf" not in str(exc).lower():
                raise
            res = con.execute(sql.format(", encoding = 'latin-1'"), params)  # TSMC2014: Latin-1 category names
        return res.df().astype("string")
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise DataError(f"cannot read as {'Parquet' if lower.endswith('.parquet') else 'CSV/TSV'}: {first}",
                        path=path) from None
    finally:
        con.close()


def data_lines(path: Path, header: bool, n: int) -> np.ndarray:
    """1-based line number of each data row (Parquet: the 0-based row index)."""
    rows = np.arange(n)
    return rows if path.name.lower().endswith((".parquet", ".pq")) else rows + (2 if header else 1)


def require_columns(df: pd.DataFrame, path: Path, cols: list[str]) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataError(f"no column {missing[0]!r}; found: {', '.join(map(str, df.columns))}", path=path,
                        column=missing[0])


def floats(df: pd.DataFrame, col: str, path: Path, lines: np.ndarray) -> np.ndarray:
    """Floats; empty cells are NaN, text that is not a number is an error naming its line."""
    text = df[col].str.strip()
    values: np.ndarray = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = np.isnan(values) & text.notna().to_numpy() & (text != "").fillna(False).to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"not a number: {text.iloc[i]!r}", path=path, row=int(lines[i]), column=col)
    return values


def ids_present(df: pd.DataFrame, cols: list[str]) -> np.ndarray:
    ok = np.ones(len(df), dtype=bool)
    for col in cols:
        text = df[col].str.strip()
        ok &= (text.notna() & (text != "")).fillna(False).to_numpy()
    return ok
