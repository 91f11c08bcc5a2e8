"""Exception hierarchy: library code raises these; only the CLI and the service turn them into messages.

Every data problem carries the file, the row/line and the column it concerns, so a user can go straight to it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class GeotowerError(Exception):
    """Base class of every error geotower raises on purpose."""


class DataError(GeotowerError):
    """Bad input data: says which file, which row (or line) and which column.

    Args:
        message: what is wrong, in a sentence.
        path: the file concerned, if any.
        row: 1-based line number (JSON lines) or 0-based data row (tables), as ``row_kind`` says.
        column: the column (or JSON field) concerned, if any.
        row_kind: "line" for text lines, "row" for table rows.
    """

    def __init__(
        self,
        message: str,
        path: str | Path | None = None,
        row: int | None = None,
        column: str | None = None,
        row_kind: str = "row",
    ) -> None:
        self.message = message
        self.path = None if path is None else str(path)
        self.row = row
        self.column = column
        self.row_kind = row_kind
        super().__init__(self._format())

    def _format(self) -> str:
        where = []
        if self.path is not None:
            where.append(f"file {self.path}")
        if self.row is not None:
            where.append(f"{self.row_kind} {self.row}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        return f"{', '.join(where)}: {self.message}" if where else self.message


class ConfigError(GeotowerError):
    """An invalid configuration key or value; the message names the key and what is allowed."""


class ArtifactError(GeotowerError):
    """A run artifact is missing, corrupt, or does not match the data/config it is used with."""


class NotFittedError(GeotowerError, ValueError, AttributeError):
    """A fitted component (encoder, baseline, index) was used before ``fit``."""


def require_fitted(obj: object, attr: str) -> Any:
    """``obj.<attr>`` (a ``*_`` attribute that ``fit`` sets), or :class:`NotFittedError` naming the class."""
    if not hasattr(obj, attr):
        raise NotFittedError(f"{type(obj).__name__} is not fitted; call fit() first")
    return getattr(obj, attr)


class GeotowerWarning(UserWarning):
    """Something was dropped, imputed or skipped; the message says what and how many."""
