"""Files as text columns (ingest.text_table): nothing guessed, line numbers of data rows, errors naming the cell."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from geotower.errors import DataError
from geotower.ingest.text_table import data_lines, floats, ids_present, read_text_table, require_columns


def test_headerless_gzip_tsv_is_all_text_with_the_given_names(tmp_path: Path) -> None:
    path = tmp_path / "log.txt.gz"
    path.write_bytes(gzip.compress(b"u1\t007\t60.5\n\t008\t\n"))
    df = read_text_table(path, ("user", "item", "lat"), None)  # .txt(.gz) means tab-separated
    assert list(df.columns) == ["user", "item", "lat"] and df["item"].tolist() == ["007", "008"]  # no int guess
    assert ids_present(df, ["user", "item"]).tolist() == [True, False]
    assert data_lines(path, header=False, n=len(df)).tolist() == [1, 2]
    np.testing.assert_array_equal(floats(df, "lat", path, data_lines(path, False, len(df))), [60.5, np.nan])


def test_header_lines_parquet_rows_and_errors_name_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("user,lat\nu1,60.1\nu2,north\n")
    df = read_text_table(path, (), None)
    lines = data_lines(path, header=True, n=len(df))
    assert lines.tolist() == [2, 3]
    with pytest.raises(DataError, match="not a number: 'north'") as err:
        floats(df, "lat", path, lines)
    assert "log.csv" in str(err.value) and "row 3" in str(err.value) and "lat" in str(err.value)
    with pytest.raises(DataError, match="no column 'lon'; found: user, lat"):
        require_columns(df, path, ["user", "lon"])
    parquet = tmp_path / "log.parquet"
    pd.DataFrame({"user": ["a", "b"], "n": [1, 2]}).to_parquet(parquet)
    assert read_text_table(parquet, (), None)["n"].tolist() == ["1", "2"]
    assert data_lines(parquet, header=True, n=2).tolist() == [0, 1]  # Parquet: the 0-based row index
    with pytest.raises(DataError, match="file does not exist"):
        read_text_table(tmp_path / "missing.csv", (), None)
