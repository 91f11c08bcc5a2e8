"""``dataset.toml``: how ratings become positives and how the string columns of items/users are encoded.

:func:`read_spec` reads it (defaults when the file is absent) and checks every key, naming the file and the key;
:meth:`DatasetSpec.to_toml` writes it back, so ``prepare`` and the loaders share one definition.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from geotower.errors import DataError


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
