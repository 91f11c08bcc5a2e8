"""Checks of the dataset folder's tables, each error naming the file, the row, the column and an example row.

Ids are non-empty strings (unique in items/users), coordinates in range and paired, every string column declared in
``dataset.toml``, features finite and not astronomically large, timestamps epoch seconds or ISO dates (larger epoch
units detected by magnitude, with a warning), ratings and weights numbers; interactions naming unknown ids are
dropped with a warning, or refused when ``strict``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from geotower import schema as S
from geotower.errors import DataError, GeotowerWarning
from geotower.ingest.spec import DatasetSpec, TableSpec


def require_columns(df: pd.DataFrame, path: Path, columns: tuple[str, ...]) -> None:
    """Each of ``columns`` is in ``df``; else a DataError naming the missing one and the columns found."""
    for col in columns:
        if col not in df.columns:
            raise DataError(f"missing required column; found columns: {', '.join(map(str, df.columns))}",
                            path=path, column=col)


def example_row(df: pd.DataFrame, idx: int) -> str:
    """Row ``idx`` as a plain dict literal, quoted in error messages so the user can find it."""
    return str({k: (v.item() if hasattr(v, "item") else v) for k, v in df.iloc[idx].to_dict().items()})


def check_ids(df: pd.DataFrame, path: Path, col: str, unique: bool) -> pd.DataFrame:
    """A copy with ``col`` as str; an empty id (or, if ``unique``, a duplicate) is a DataError naming its row."""
    df = df.copy()
    missing = df[col].isna().to_numpy()
    if missing.any():
        i = int(np.flatnonzero(missing)[0])
        raise DataError(f"empty id, e.g. {example_row(df, i)}", path=path, row=i, column=col)
    df[col] = df[col].astype(str)
    if unique:
        dup = df[col].duplicated().to_numpy()
        if dup.any():
            i = int(np.flatnonzero(dup)[0])
            raise DataError(f"duplicate id {df[col].iloc[i]!r} ({int(dup.sum())} duplicates), "
                            f"e.g. {example_row(df, i)}", path=path, row=i, column=col)
    return df


def check_coordinates(items: pd.DataFrame, path: Path) -> None:
    """``lat``/``lon`` (in place) as floats in range, present together or not at all."""
    for col, bound in ((S.LAT, 90.0), (S.LON, 180.0)):
        if col not in items.columns:
            continue
        values = pd.to_numeric(items[col], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values) | (np.abs(values) > bound)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(f"{col} must be a number in [-{bound:g}, {bound:g}] ({int(bad.sum())} bad rows), "
                            f"e.g. {example_row(items, i)}", path=path, row=i, column=col)
        items[col] = values
    if (S.LAT in items.columns) != (S.LON in items.columns):
        raise DataError("lat and lon must come together", path=path, column=S.LAT if S.LON in items else S.LON)


def _coerce_numeric(df: pd.DataFrame, path: Path, spec: TableSpec) -> None:
    """Declared numeric columns: unparseable values become the column median, with a warning naming rows."""
    for col in spec.numeric:
        if col not in df.columns:
            raise DataError("declared numeric in dataset.toml but not in the table", path=path, column=col)
        values = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float, copy=True)
        bad = ~np.isfinite(values)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            fill = float(np.median(values[~bad])) if (~bad).any() else 0.0
            warnings.warn(f"{path}: column {col!r}: {int(bad.sum())} values are not numbers (first at row {i}: "
                          f"{df[col].iloc[i]!r}); imputed with the median {fill:g}", GeotowerWarning, stacklevel=3)
            values[bad] = fill
        df[col] = values


MAX_FEATURE_ABS = 1e15  # beyond this, standardising a float32 column overflows and zeroes it


def _check_magnitude(df: pd.DataFrame, path: Path, col: str) -> None:
    """A numeric feature may be missing (NaN: the nan policy decides) but never infinite or astronomically large
    (one -1e300 zeroed a whole standardised column)."""
    values = df[col].to_numpy(dtype=float)
    bad = np.isinf(values) | (np.abs(np.nan_to_num(values)) > MAX_FEATURE_ABS)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"feature value {values[i]!r} is infinite or beyond +-{MAX_FEATURE_ABS:g} "
                        f"({int(bad.sum())} such rows), e.g. {example_row(df, i)}", path=path, row=i, column=col)


def check_feature_columns(df: pd.DataFrame, path: Path, spec: TableSpec, id_col: str) -> None:
    """Every string column must be declared (multi_label/categorical) or excluded: no silent drop."""
    _coerce_numeric(df, path, spec)
    declared = set(spec.multi_label) | set(spec.categorical) | set(spec.exclude) | {id_col, S.NAME}
    for col in list(spec.multi_label) + list(spec.categorical):
        if col not in df.columns:
            raise DataError("declared in dataset.toml but not in the table", path=path, column=col)
    for col in df.columns:
        if pd.api.types.is_numeric_dtype(df[col]) and not pd.api.types.is_bool_dtype(df[col]) and col != id_col:
            _check_magnitude(df, path, str(col))
        if col in declared or pd.api.types.is_numeric_dtype(df[col]) or pd.api.types.is_bool_dtype(df[col]):
            continue
        sample = df[col].dropna()
        raise DataError(f"string column is neither declared (multi_label/categorical) nor excluded in "
                        f"dataset.toml; e.g. value {sample.iloc[0] if len(sample) else None!r}",
                        path=path, column=str(col))


_EPOCH_RANGE = (-1e10, 1e11)  # plausible epoch seconds: years 1653..5138
_UNITS = ((1e11, 1e14, 1e3, "milliseconds"), (1e14, 1e17, 1e6, "microseconds"), (1e17, 1e20, 1e9, "nanoseconds"))


def _parse_timestamps(inter: pd.DataFrame, path: Path) -> None:
    """Epoch numbers (seconds; milliseconds/micro/nanoseconds detected by magnitude, with a warning) or ISO dates.

    A value that is neither, or out of the plausible range (``1e30`` used to wrap to int64 min), is an error
    naming its row.
    """
    ts = inter[S.TIMESTAMP]
    values = pd.to_numeric(ts, errors="coerce").to_numpy(dtype=float, copy=True)
    if not pd.api.types.is_numeric_dtype(ts):  # ISO dates, possibly mixed with epoch numbers
        text = ~np.isfinite(values) & ts.notna().to_numpy()
        if text.any():
            parsed = pd.to_datetime(ts[text], errors="coerce", utc=True, format="mixed")
            values[text] = _epoch_seconds(parsed)
    finite = np.isfinite(values)
    if finite.any():
        median = float(np.median(np.abs(values[finite])))
        for low, high, factor, unit in _UNITS:
            if low <= median < high:
                warnings.warn(f"{path}: column {S.TIMESTAMP!r} looks like epoch {unit} (median {median:.0f}); "
                              f"divided by {factor:g} to get seconds", GeotowerWarning, stacklevel=4)
                values = values / factor
                break
    bad = ~np.isfinite(values) | (values < _EPOCH_RANGE[0]) | (values >= _EPOCH_RANGE[1])
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"timestamp must be epoch seconds or an ISO date (years 1653..5138; "
                        f"{int(bad.sum())} bad rows), e.g. {example_row(inter, i)}", path=path, row=i,
                        column=S.TIMESTAMP)
    inter[S.TIMESTAMP] = np.floor(values).astype(np.int64)


def _epoch_seconds(parsed: pd.Series) -> np.ndarray:
    out = np.full(len(parsed), np.nan)
    ok = parsed.notna().to_numpy()
    out[ok] = (parsed[ok] - pd.Timestamp("1970-01-01", tz="UTC")).dt.total_seconds().to_numpy()
    return out


def _numeric_column(inter: pd.DataFrame, path: Path, col: str) -> npt.NDArray[np.float64]:
    values: npt.NDArray[np.float64] = pd.to_numeric(inter[col], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"must be a finite number, e.g. {example_row(inter, i)}", path=path, row=i, column=col)
    return values


def normalise_interactions(inter: pd.DataFrame, path: Path, spec: DatasetSpec) -> pd.DataFrame:
    """``user_id, item_id, [rating,] positive, [timestamp,] weight`` by the ``dataset.toml`` rules, checked."""
    require_columns(inter, path, (S.USER_ID, S.ITEM_ID))
    inter = check_ids(check_ids(inter, path, S.USER_ID, False), path, S.ITEM_ID, False)
    out = inter[[S.USER_ID, S.ITEM_ID]].copy()
    if S.RATING in inter.columns:
        out[S.RATING] = _numeric_column(inter, path, S.RATING)
        out[S.POSITIVE] = (out[S.RATING] - spec.rating_offset) > spec.positive_threshold
    else:
        out[S.POSITIVE] = True
    if S.TIMESTAMP in inter.columns:
        _parse_timestamps(inter, path)
        out[S.TIMESTAMP] = inter[S.TIMESTAMP].to_numpy()
    if spec.weight is not None:
        require_columns(inter, path, (spec.weight,))
        w = _numeric_column(inter, path, spec.weight)
        if (w < 0).any():
            i = int(np.flatnonzero(w < 0)[0])
            raise DataError(f"weight must be >= 0, e.g. {example_row(inter, i)}", path=path, row=i, column=spec.weight)
        out[S.WEIGHT] = w.astype(np.float32)
    else:
        out[S.WEIGHT] = np.float32(1.0)
    return out


def drop_unknown(inter: pd.DataFrame, path: Path, col: str, known: pd.Index, strict: bool) -> pd.DataFrame:
    """Interactions whose ``col`` is in ``known``; the others are dropped with a warning (an error if ``strict``)."""
    unknown = ~inter[col].isin(known).to_numpy()
    if not unknown.any():
        return inter
    i = int(np.flatnonzero(unknown)[0])
    msg = f"{int(unknown.sum())} interactions reference unknown {col} values, e.g. {example_row(inter, i)}"
    if strict:
        raise DataError(msg, path=path, row=i, column=col)
    warnings.warn(f"{path}: {msg}; dropped", GeotowerWarning, stacklevel=3)
    return inter.loc[~unknown].reset_index(drop=True)
