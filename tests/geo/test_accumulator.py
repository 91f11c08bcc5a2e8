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

