"""The dataset-folder contract that every command after ``prepare`` reads.

A dataset folder holds ``interactions.parquet|csv`` (``user_id, item_id`` [, ``rating``, ``timestamp``, weight]),
``items.parquet|csv`` (``item_id`` [, ``lat, lon``] + candidate features), optionally ``users.parquet|csv`` and
``dataset.toml`` (how ratings become positives and how string columns are encoded). Validation happens here, once,
with errors that name the file, the row and the column, and an example of the offending row.
"""

from __future__ import annotations

import tomllib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from geotower import artifacts
from geotower import schema as S
from geotower.errors import DataError, GeotowerWarning


@dataclass(frozen=True)
class TableSpec:
    """How the string columns of items/users are encoded, and which columns are not features."""

    multi_label: dict[str, str] = field(default_factory=dict)  # column -> separator
    categorical: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    numeric: tuple[str, ...] = ()  # coerced to numbers; unparseable values imputed (median) with a warning


@dataclass(frozen=True)
class DatasetSpec:
    """Contents of ``dataset.toml``; defaults are the original design (rating - 2 > 0 is positive)."""

    rating_offset: float = 2.0
    positive_threshold: float = 0.0
    weight: str | None = None
    items: TableSpec = field(default_factory=TableSpec)
    users: TableSpec = field(default_factory=TableSpec)

    def to_toml(self) -> str:
        """TOML text in the documented layout; :func:`read_spec` reads it back unchanged."""
        lines = ["[interactions]", f"rating_offset = {self.rating_offset!r}",
                 f"positive_threshold = {self.positive_threshold!r}"]
        if self.weight is not None:
            lines.append(f'weight = "{self.weight}"')
        for name, t in (("items", self.items), ("users", self.users)):
            ml = ", ".join(f'"{k}" = "{v}"' for k, v in t.multi_label.items())
            lines += [f"\n[{name}]", f"multi_label = {{ {ml} }}" if ml else "multi_label = {}",
                      f"categorical = {_toml_list(t.categorical)}", f"exclude = {_toml_list(t.exclude)}",
                      f"numeric = {_toml_list(t.numeric)}"]
        return "\n".join(lines) + "\n"


def _toml_list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(f'"{v}"' for v in values) + "]"


@dataclass
class Dataset:
    """A validated dataset folder, with ids as strings and interactions normalised.

    ``interactions`` has ``user_id, item_id, weight, positive`` and, where the source had them, ``rating``
    (float) and ``timestamp`` (int64 epoch seconds). ``items`` has ``item_id`` first; ``users`` may be None.
    """

    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame | None
    spec: DatasetSpec
    files: dict[str, Path]
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def has_timestamps(self) -> bool:
        return S.TIMESTAMP in self.interactions.columns

    @property
    def has_coordinates(self) -> bool:
        return S.LAT in self.items.columns and S.LON in self.items.columns

    def fingerprint(self) -> dict[str, Any]:
        rows = {"interactions": len(self.interactions), "items": len(self.items)}
        if self.users is not None:
            rows["users"] = len(self.users)
        return artifacts.fingerprint({k: v for k, v in self.files.items()}, rows)


# --- reading --------------------------------------------------------------------------------------
def find_table(folder: Path, stem: str, required: bool = True) -> Path | None:
    """``folder/stem.parquet`` or ``folder/stem.csv`` (parquet preferred)."""
    for suffix in S.TABLE_SUFFIXES:
        candidate = folder / f"{stem}{suffix}"
        if candidate.exists():
            return candidate
    if required:
        raise DataError(f"missing {stem}.parquet or {stem}.csv in the dataset folder", path=folder)
    return None


def _required_table(folder: Path, stem: str) -> Path:
    path = find_table(folder, stem)
    if path is None:  # find_table raises when required; this keeps the type checker honest
        raise DataError(f"missing {stem} table", path=folder)
    return path


def read_spec(path: Path | None) -> DatasetSpec:
    """Parse ``dataset.toml``; unknown sections or keys are errors naming them."""
    if path is None or not path.exists():
        return DatasetSpec()
    if path.is_dir():
        raise DataError("is a folder, expected the dataset.toml file", path=path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"invalid TOML: {exc}", path=path) from None
    allowed = {"interactions": {"rating_offset", "positive_threshold", "weight"},
               "items": {"multi_label", "categorical", "exclude", "numeric"},
               "users": {"multi_label", "categorical", "exclude", "numeric"},
               # the column mapping of `prepare checkins` (checked by geotower.ingest.checkins)
               "checkins": {"preset", "user", "item", "time", "lat", "lon", "rating", "category", "sep",
                            "time_format", "pois"}}
    for section, values in raw.items():
        if section not in allowed or not isinstance(values, dict):
            raise DataError(f"unknown section [{section}]; allowed: {', '.join(allowed)}", path=path)
        for key in values:
            if key not in allowed[section]:
                raise DataError(f"unknown key {section}.{key}; allowed: {', '.join(sorted(allowed[section]))}",
                                path=path, column=key)
    inter = raw.get("interactions", {})

    def table(name: str) -> TableSpec:
        t = raw.get(name, {})
        ml = t.get("multi_label", {})
        if not isinstance(ml, dict) or not all(isinstance(v, str) for v in ml.values()):
            raise DataError(f"{name}.multi_label must be a table of column = \"separator\" strings, got {ml!r}",
                            path=path, column="multi_label")
        return TableSpec(dict(ml), _names(t, "categorical", name, path), _names(t, "exclude", name, path),
                         _names(t, "numeric", name, path))

    weight = inter.get("weight")
    if weight is not None and not isinstance(weight, str):
        raise DataError(f"interactions.weight must be a column name (a string), got {weight!r}", path=path,
                        column="weight")
    return DatasetSpec(_number(inter, "rating_offset", 2.0, path), _number(inter, "positive_threshold", 0.0, path),
                       weight, table("items"), table("users"))


def _number(section: dict[str, Any], key: str, default: float, path: Path) -> float:
    """A finite TOML number (``rating_offset = "two"`` is an error naming the key, not a traceback)."""
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise DataError(f"interactions.{key} must be a finite number, got {value!r}", path=path, column=key)
    return float(value)


def _names(section: dict[str, Any], key: str, table: str, path: Path) -> tuple[str, ...]:
    """A list of column names; a bare string (``categorical = "categories"``) is an error, not 10 columns."""
    value = section.get(key, [])
    if isinstance(value, str):
        raise DataError(f"{table}.{key} must be a list of column names, e.g. {key} = [{value!r}]; got the string "
                        f"{value!r}", path=path, column=key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DataError(f"{table}.{key} must be a list of column names, got {value!r}", path=path, column=key)
    return tuple(value)


def _read(path: Path) -> pd.DataFrame:
    df = artifacts.read_table(path, dtype={S.USER_ID: str, S.ITEM_ID: str})
    return df


def _require(df: pd.DataFrame, path: Path, columns: tuple[str, ...]) -> None:
    for col in columns:
        if col not in df.columns:
            raise DataError(f"missing required column; found columns: {', '.join(map(str, df.columns))}",
                            path=path, column=col)


def _example(df: pd.DataFrame, idx: int) -> str:
    return str({k: (v.item() if hasattr(v, "item") else v) for k, v in df.iloc[idx].to_dict().items()})


def _check_ids(df: pd.DataFrame, path: Path, col: str, unique: bool) -> pd.DataFrame:
    df = df.copy()
    missing = df[col].isna().to_numpy()
    if missing.any():
        i = int(np.flatnonzero(missing)[0])
        raise DataError(f"empty id, e.g. {_example(df, i)}", path=path, row=i, column=col)
    df[col] = df[col].astype(str)
    if unique:
        dup = df[col].duplicated().to_numpy()
        if dup.any():
            i = int(np.flatnonzero(dup)[0])
            raise DataError(f"duplicate id {df[col].iloc[i]!r} ({int(dup.sum())} duplicates), e.g. {_example(df, i)}",
                            path=path, row=i, column=col)
    return df


def _check_coordinates(items: pd.DataFrame, path: Path) -> None:
    for col, bound in ((S.LAT, 90.0), (S.LON, 180.0)):
        if col not in items.columns:
            continue
        values = pd.to_numeric(items[col], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values) | (np.abs(values) > bound)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(f"{col} must be a number in [-{bound:g}, {bound:g}] ({int(bad.sum())} bad rows), "
                            f"e.g. {_example(items, i)}", path=path, row=i, column=col)
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
                        f"({int(bad.sum())} such rows), e.g. {_example(df, i)}", path=path, row=i, column=col)


def _check_feature_columns(df: pd.DataFrame, path: Path, spec: TableSpec, id_col: str) -> None:
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
                        f"{int(bad.sum())} bad rows), e.g. {_example(inter, i)}", path=path, row=i,
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
        raise DataError(f"must be a finite number, e.g. {_example(inter, i)}", path=path, row=i, column=col)
    return values


def _normalise_interactions(inter: pd.DataFrame, path: Path, spec: DatasetSpec) -> pd.DataFrame:
    _require(inter, path, (S.USER_ID, S.ITEM_ID))
    inter = _check_ids(_check_ids(inter, path, S.USER_ID, False), path, S.ITEM_ID, False)
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
        _require(inter, path, (spec.weight,))
        w = _numeric_column(inter, path, spec.weight)
        if (w < 0).any():
            i = int(np.flatnonzero(w < 0)[0])
            raise DataError(f"weight must be >= 0, e.g. {_example(inter, i)}", path=path, row=i, column=spec.weight)
        out[S.WEIGHT] = w.astype(np.float32)
    else:
        out[S.WEIGHT] = np.float32(1.0)
    return out


def _drop_unknown(inter: pd.DataFrame, path: Path, col: str, known: pd.Index, strict: bool) -> pd.DataFrame:
    unknown = ~inter[col].isin(known).to_numpy()
    if not unknown.any():
        return inter
    i = int(np.flatnonzero(unknown)[0])
    msg = f"{int(unknown.sum())} interactions reference unknown {col} values, e.g. {_example(inter, i)}"
    if strict:
        raise DataError(msg, path=path, row=i, column=col)
    warnings.warn(f"{path}: {msg}; dropped", GeotowerWarning, stacklevel=3)
    return inter.loc[~unknown].reset_index(drop=True)


def load_dataset(folder: str | Path, strict: bool = False) -> Dataset:
    """Read and validate a dataset folder.

    Raises:
        DataError: naming file, row and column for every contract violation.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise DataError("is a file, expected a dataset folder", path=folder)
    if not folder.is_dir():
        raise DataError("dataset folder does not exist", path=folder)
    if (folder / artifacts.COMPLETE).exists():  # written by geotower: refuse a mixed or damaged folder
        artifacts.verify_folder(folder, "dataset")
    spec = read_spec(folder / S.DATASET_TOML)
    inter_path = _required_table(folder, S.INTERACTIONS_STEM)
    items_path = _required_table(folder, S.ITEMS_STEM)
    users_path = find_table(folder, S.USERS_STEM, required=False)
    items = _read(items_path)
    _require(items, items_path, (S.ITEM_ID,))
    items = _check_ids(items, items_path, S.ITEM_ID, True)
    _check_coordinates(items, items_path)
    _check_feature_columns(items, items_path, spec.items, S.ITEM_ID)
    users = None
    if users_path is not None:
        users = _read(users_path)
        _require(users, users_path, (S.USER_ID,))
        users = _check_ids(users, users_path, S.USER_ID, True)
        _check_feature_columns(users, users_path, spec.users, S.USER_ID)
    raw = _read(inter_path)
    inter = _normalise_interactions(raw, inter_path, spec)
    n0 = len(inter)
    inter = _drop_unknown(inter, inter_path, S.ITEM_ID, pd.Index(items[S.ITEM_ID]), strict)
    if users is not None:
        inter = _drop_unknown(inter, inter_path, S.USER_ID, pd.Index(users[S.USER_ID]), strict)
    if len(inter) == 0:
        raise DataError("no interactions left after dropping unknown users/items", path=inter_path)
    if not inter[S.POSITIVE].any():
        raise DataError(f"no positive interactions (positive = rating - {spec.rating_offset:g} > "
                        f"{spec.positive_threshold:g})", path=inter_path, column=S.RATING)
    files = {"interactions": inter_path, "items": items_path}
    if users_path is not None:
        files["users"] = users_path
    if (folder / S.DATASET_TOML).exists():
        files["dataset_toml"] = folder / S.DATASET_TOML
    return Dataset(inter, items.reset_index(drop=True), users, spec, files, {"interactions": n0 - len(inter)})


def write_dataset(folder: str | Path, interactions: pd.DataFrame, items: pd.DataFrame, spec: DatasetSpec,
                  users: pd.DataFrame | None = None) -> Path:
    """Write a dataset folder (parquet tables + dataset.toml) as one atomic swap with a completion marker."""
    folder = Path(folder)
    with artifacts.staged_folder(folder, "dataset") as stage:
        artifacts.write_table(stage / f"{S.ITEMS_STEM}.parquet", items)
        if users is not None:
            artifacts.write_table(stage / f"{S.USERS_STEM}.parquet", users)
        artifacts.write_table(stage / f"{S.INTERACTIONS_STEM}.parquet", interactions)
        artifacts.write_text(stage / S.DATASET_TOML, spec.to_toml())
    return folder


def read_interactions(path: str | Path, spec: DatasetSpec) -> pd.DataFrame:
    """Read one extra interactions file (e.g. an external test set) by the same ``dataset.toml`` rules.

    Ids are not checked against the catalogue here: the caller decides whether unknown ids are an error.

    Raises:
        DataError: unreadable file, missing columns or bad values, naming file, row and column.
    """
    path = Path(path)
    return _normalise_interactions(_read(path), path, spec)
