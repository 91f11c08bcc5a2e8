"""GeoFilter must return exactly the brute-force haversine set, including across the antimeridian and near poles."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geotower.retrieve.geo_filter import EARTH_RADIUS_KM, GeoFilter, haversine_km


def test_haversine_known_values() -> None:
    # one degree of longitude on the equator = 2*pi*R/360 = 111.195 km; pole to pole = pi*R = 20015.1 km
    d = haversine_km(0.0, 0.0, np.array([0.0, 90.0]), np.array([1.0, 0.0]))
    np.testing.assert_allclose(d, [2 * np.pi * EARTH_RADIUS_KM / 360, np.pi * EARTH_RADIUS_KM / 2], rtol=1e-9)
    assert haversine_km(-90.0, 0.0, np.array([90.0]), np.array([0.0]))[0] == pytest.approx(np.pi * EARTH_RADIUS_KM)


def test_within_is_inclusive_sorted_and_skips_missing_coordinates() -> None:
    # points at lon 0, 0.01, ..., 0.05 on the equator (1.112 km apart); one point without coordinates
    lats = np.array([0.0, 0.0, np.nan, 0.0, 0.0, 0.0, 0.0])
    lons = np.array([0.05, 0.0, 0.0, 0.01, 0.02, 0.03, 0.04])
    geo = GeoFilter(lats, lons)
    assert geo.n_located == 6
    rows, dist = geo.within(0.0, 0.0, 2 * 1.11195080233533)  # exactly two steps: inclusive
    assert rows.tolist() == [1, 3, 4]
    np.testing.assert_allclose(dist, [0.0, 1.11195, 2.22390], atol=1e-4)
    assert geo.within(10.0, 10.0, 5.0)[0].size == 0


def test_within_across_antimeridian() -> None:
    geo = GeoFilter([0.0, 0.0, 0.0], [179.99, -179.99, 170.0])  # first two are 2.22 km apart across lon 180
    rows, dist = geo.within(0.0, 180.0, 1.2)
    assert rows.tolist() == [0, 1]
    np.testing.assert_allclose(dist, [1.11195, 1.11195], atol=1e-4)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), lat=st.floats(-90, 90), lon=st.floats(-180, 180),
       radius=st.floats(0.01, 25_000))
def test_within_matches_brute_force(seed: int, lat: float, lon: float, radius: float) -> None:
    rng = np.random.default_rng(seed)
    n = 300
    # half the points cluster near the query so small radii have hits too
    lats = np.r_[rng.uniform(-90, 90, n // 2), np.clip(lat + rng.normal(0, 0.5, n // 2), -90, 90)]
    lons = np.r_[rng.uniform(-180, 180, n // 2), (lon + rng.normal(0, 0.5, n // 2) + 180) % 360 - 180]
    rows, dist = GeoFilter(lats, lons).within(lat, lon, radius)
    full = haversine_km(lat, lon, lats, lons)
    expected = np.flatnonzero(full <= radius)
    assert rows.tolist() == expected.tolist()
    np.testing.assert_allclose(dist, full[expected])


def test_ranges_concatenates_aranges() -> None:
    from geotower.retrieve.geo_filter import _ranges

    got = _ranges(np.array([2, 7, 5, 9]), np.array([4, 7, 6, 12]))
    assert got.tolist() == [2, 3, 5, 9, 10, 11]
    assert _ranges(np.array([3]), np.array([3])).size == 0


def test_within_spans_strip_boundaries() -> None:
    # strips are 0.05 deg tall: 0.0499 and 0.0501 lie in different strips, 22 m apart
    geo = GeoFilter([0.0499, 0.0501, 0.2], [10.0, 10.0, 10.0])
    assert geo.within(0.05, 10.0, 0.05)[0].tolist() == [0, 1]
    assert geo.within(0.1, 10.0, 0.1 * 111.2)[0].tolist() == [0, 1, 2]  # 0.1 deg = 11.12 km reaches all
