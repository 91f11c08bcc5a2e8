"""The dataset-folder contract that every command after ``prepare`` reads.

A dataset folder holds ``interactions.parquet|csv`` (``user_id, item_id`` [, ``rating``, ``timestamp``, weight]),
``items.parquet|csv`` (``item_id`` [, ``lat, lon``] + candidate features), optionally ``users.parquet|csv`` and
``dataset.toml`` (how ratings become positives and how string columns are encoded). Validation happens here, once,
with errors that name the file, the row and the column, and an example of the offending row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from geotower import artifacts
from geotower import schema as S
from geotower.errors import DataError
from geotower.ingest.columns import (
    check_coordinates,
    check_feature_columns,
    check_ids,
    drop_unknown,
    normalise_interactions,
    require_columns,
)
from geotower.ingest.spec import DatasetSpec, TableSpec, read_spec

# the dataset-folder contract, with dataset.toml's spec (ingest.spec) that every caller reads alongside
__all__ = ["Dataset", "DatasetSpec", "TableSpec", "find_table", "load_dataset", "read_interactions", "read_spec",
           "write_dataset"]


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


def _read(path: Path) -> pd.DataFrame:
    df = artifacts.read_table(path, dtype={S.USER_ID: str, S.ITEM_ID: str})
    return df


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
    require_columns(items, items_path, (S.ITEM_ID,))
    items = check_ids(items, items_path, S.ITEM_ID, True)
    check_coordinates(items, items_path)
    check_feature_columns(items, items_path, spec.items, S.ITEM_ID)
    users = None
    if users_path is not None:
        users = _read(users_path)
        require_columns(users, users_path, (S.USER_ID,))
        users = check_ids(users, users_path, S.USER_ID, True)
        check_feature_columns(users, users_path, spec.users, S.USER_ID)
    raw = _read(inter_path)
    inter = normalise_interactions(raw, inter_path, spec)
    n0 = len(inter)
    inter = drop_unknown(inter, inter_path, S.ITEM_ID, pd.Index(items[S.ITEM_ID]), strict)
    if users is not None:
        inter = drop_unknown(inter, inter_path, S.USER_ID, pd.Index(users[S.USER_ID]), strict)
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
    return normalise_interactions(_read(path), path, spec)
