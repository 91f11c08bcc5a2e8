"""Shared fixtures of the geo tests: the tiny OSM fixture files (see tests/fixtures/make_osm_fixtures.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # geo_expected and sjoin_reference live beside the tests
from geo_expected import FIXTURES  # noqa: E402


@pytest.fixture
def tiny_items() -> pd.DataFrame:
    return pd.read_csv(FIXTURES / "items.csv")


@pytest.fixture
def tiny_zip() -> Path:
    return FIXTURES / "tiny-free.shp.zip"


@pytest.fixture
def tiny_pbf() -> Path:
    return FIXTURES / "tiny.osm.pbf"
