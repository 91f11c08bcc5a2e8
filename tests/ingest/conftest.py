"""Fixtures for the ingest tests: the committed Yelp JSON-lines files (known answers in their generator's
docstring), a writer for variants with bad lines, and a builder of small dataset folders in the real contract."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from ingest_helpers import FIXTURES


@pytest.fixture
def yelp_files() -> tuple[Path, Path]:
    """The committed fixture files (business.json, review.json)."""
    return FIXTURES / "yelp" / "business.json", FIXTURES / "yelp" / "review.json"


@pytest.fixture
def write_lines(tmp_path: Path) -> Callable[[str, list[str]], Path]:
    """Write ``lines`` (no trailing newline handling needed) to ``tmp_path/name``."""

    def write(name: str, lines: list[str]) -> Path:
        path = tmp_path / name
        path.write_text("\n".join(lines) + "\n")
        return path

    return write


@pytest.fixture
def dataset_dir(tmp_path: Path) -> Callable[..., Path]:
    """Write a dataset folder from frames (csv so that string/NaN cases survive) and optional dataset.toml text."""

    def make(interactions: pd.DataFrame, items: pd.DataFrame, toml: str | None = None,
             users: pd.DataFrame | None = None) -> Path:
        folder = tmp_path / "ds"
        folder.mkdir(exist_ok=True)
        interactions.to_csv(folder / "interactions.csv", index=False)
        items.to_csv(folder / "items.csv", index=False)
        if users is not None:
            users.to_csv(folder / "users.csv", index=False)
        if toml is not None:
            (folder / "dataset.toml").write_text(toml)
        return folder

    return make
