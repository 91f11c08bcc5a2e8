"""Per-item sums over feature chunks (geotower.geo.accumulator), on hand-placed points and lines in metres."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from geotower.geo.accumulator import FeatureAccumulator
from geotower.schema import LAYER_BY_NAME

ROADS = LAYER_BY_NAME["roads"]
# item a at the origin, item b 1 km east. Road 1: 100 m along x centred on a. Road 2: 2 km along y through a.
# The buffers are 64-gons with a vertex every 5.625 deg, so one at 90 deg: road 2 enters a's 100 m buffer at
# (0, -100) and leaves at (0, 100), 200 m inside; the 500 m buffer holds 1000 m of it. b is 950 m from road 1's end
# and 1000 m from road 2: outside both of its buffers.
POINTS = shapely.points([[0.0, 0.0], [1000.0, 0.0]])
ROADS_GEOMS = np.array([shapely.LineString([(-50, 0), (50, 0)]), shapely.LineString([(0, -1000), (0, 1000)])])


@pytest.mark.parametrize(("mode", "lengths"), [("clipped", (300.0, 1100.0)), ("whole", (2100.0, 2100.0))])
def test_counts_and_lengths_known_answer(mode: str, lengths: tuple[float, float]) -> None:
    acc = FeatureAccumulator(POINTS, (100, 500), mode)
    acc.add(ROADS, ROADS_GEOMS[:1])  # chunks in any order, each feature once
    acc.add(ROADS, ROADS_GEOMS[1:])
    table = acc.frame(np.array(["a", "b"]), (ROADS,))
    assert table["roads_100m_count"].tolist() == [2.0, 0.0] and table["roads_500m_count"].tolist() == [2.0, 0.0]
    np.testing.assert_allclose(table["roads_100m_len"], [lengths[0], 0.0], rtol=1e-9)
    np.testing.assert_allclose(table["roads_500m_len"], [lengths[1], 0.0], rtol=1e-9)



def _geos_table(points: np.ndarray, geoms: np.ndarray, radii: tuple[int, ...], kind: str,
                mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Counts and measures by plain GEOS: every (buffer, feature) pair tested with intersects/intersection."""
    counts, measures = np.zeros((len(radii), len(points))), np.zeros((len(radii), len(points)))
    for k, r in enumerate(radii):
        buffers = shapely.buffer(points, r, quad_segs=16)
        hit = shapely.intersects(buffers[:, None], geoms[None, :])
        counts[k] = hit.sum(axis=1)
        if kind != "point":
            parts = shapely.intersection(buffers[:, None], geoms[None, :]) if mode == "clipped" else geoms[None, :]
            size = shapely.length(parts) if kind == "line" else shapely.area(parts)
            measures[k] = np.where(hit, size, 0.0).sum(axis=1)
    return counts, measures


@pytest.mark.parametrize("mode", ["clipped", "whole"])
@pytest.mark.parametrize("layer", ["pois", "roads", "buildings"])
def test_random_features_equal_plain_geos(layer: str, mode: str) -> None:
    # features of every size against 100/200/500 m: wholly inside one radius and crossing a smaller one, crossing
    # several, touching only the thin ring between a 64-gon and its inscribed disc, far away
    rng = np.random.default_rng(7)
    points = shapely.points(rng.uniform(0, 2000, size=(60, 2)))
    kind = LAYER_BY_NAME[layer].kind
    if kind == "point":
        geoms = shapely.points(rng.uniform(-300, 2300, size=(400, 2)))
    elif kind == "line":
        start = rng.uniform(-300, 2300, size=(300, 1, 2))
        geoms = shapely.linestrings(start + np.cumsum(rng.normal(0, 60, size=(300, 5, 2)), axis=1))
    else:
        angles = np.sort(rng.uniform(0, 2 * np.pi, size=(300, 8)), axis=1)
        size = rng.choice([10.0, 60.0, 400.0], size=(300, 1)) * rng.uniform(0.5, 1.0, size=(300, 8))
        centre = rng.uniform(-300, 2300, size=(300, 1, 2))
        geoms = shapely.polygons(centre + np.stack([size * np.cos(angles), size * np.sin(angles)], axis=2))
        geoms = geoms[shapely.is_valid(geoms)]  # GEOS overlay needs valid input (the extract's are repaired)
    radii = (100, 200, 500)
    acc = FeatureAccumulator(points, radii, mode)
    acc.add(LAYER_BY_NAME[layer], geoms[:100])
    acc.add(LAYER_BY_NAME[layer], geoms[100:])
    counts, measures = _geos_table(points, geoms, radii, kind, mode)
    np.testing.assert_array_equal(acc.counts[layer], counts)
    np.testing.assert_allclose(acc.measures[layer], measures, rtol=1e-9, atol=1e-6)


def test_points_in_the_thin_ring_between_disc_and_64_gon() -> None:
    # points at every angle between the inscribed disc (r cos(pi/64)) and the circumcircle: in the 64-gon near
    # its vertices, outside it near the middle of its edges; counts must equal GEOS's intersects
    centre = shapely.points([[500.0, 500.0]])
    angles = np.linspace(0, 2 * np.pi, 2000, endpoint=False)
    radius = 100 * np.linspace(np.cos(np.pi / 64), 1.0, 2000)
    geoms = shapely.points(np.column_stack([500 + radius * np.cos(angles), 500 + radius * np.sin(angles)]))
    acc = FeatureAccumulator(centre, (100,), "clipped")
    acc.add(LAYER_BY_NAME["pois"], geoms)
    want = shapely.intersects(shapely.buffer(centre[0], 100, quad_segs=16), geoms).sum()
    assert 0 < want < len(geoms)
    assert acc.counts["pois"][0, 0] == want
