"""Clipped length/area against 64-gon buffers: known answers, then agreement with GEOS overlay."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely

from geotower.geo.clip import QUAD_SEGS, Rings

CENTRE = np.array([[1000.0, 2000.0]])


def _clip(geom: shapely.Geometry, kind: str, r: float, centre: np.ndarray = CENTRE) -> float:
    return float(Rings(np.array([geom]), kind).clipped(np.array([0]), centre, r)[0])


def _geos(geom: shapely.Geometry, kind: str, r: float, centre: np.ndarray = CENTRE) -> float:
    part = shapely.intersection(shapely.buffer(shapely.Point(centre[0]), r, quad_segs=QUAD_SEGS), geom)
    return part.length if kind == "line" else part.area


def test_line_through_centre_is_a_diameter() -> None:
    # the 64-gon has vertices at 0 and 180 degrees, so a horizontal diameter is exactly 2r long
    line = shapely.LineString([(0, 2000), (3000, 2000)])
    assert _clip(line, "line", 100) == pytest.approx(200, rel=1e-12)


def test_multiline_parts_add_up() -> None:
    # two horizontal diameters-halves: (1000..1200) and (800..1000) inside r=100 -> 100 + 100
    multi = shapely.MultiLineString([[(1000, 2000), (1200, 2000)], [(700, 2000), (1000, 2000)]])
    assert _clip(multi, "line", 100) == pytest.approx(200, rel=1e-12)


def test_half_plane_polygon_is_half_the_gon() -> None:
    # square east of the centre, its west edge through the centre: half of 32 r^2 sin(pi/32)
    square = shapely.box(1000, 0, 5000, 4000)
    assert _clip(square, "polygon", 100) == pytest.approx(16 * 100**2 * math.sin(math.pi / 32), rel=1e-12)


def test_hole_counts_negatively() -> None:
    # 200 x 200 square around the centre minus a 40 x 40 hole; r=500 holds all: 40000 - 1600
    poly = shapely.Polygon(shapely.box(900, 1900, 1100, 2100).exterior.coords,
                           [shapely.box(980, 1980, 1020, 2020).exterior.coords])
    assert _clip(poly, "polygon", 500) == pytest.approx(38400, rel=1e-12)


def test_segment_parallel_outside_contributes_nothing() -> None:
    line = shapely.LineString([(0, 2150), (3000, 2150)])
    assert _clip(line, "line", 100) == 0.0


def test_agrees_with_geos_on_random_shapes() -> None:
    rng = np.random.default_rng(0)
    centres = rng.uniform(0, 400, size=(60, 2))
    lines = shapely.linestrings(rng.uniform(0, 400, size=(60, 5, 2)))
    # concave, self-intersection-free stars (crossing the buffer edge several times) and multipolygons
    angles = np.sort(rng.uniform(0, 2 * np.pi, size=(60, 9)), axis=1)
    radius = rng.uniform(40, 250, size=(60, 9))
    stars = shapely.polygons(np.stack([200 + radius * np.cos(angles), 200 + radius * np.sin(angles)], axis=2))
    multis = shapely.multipolygons([[shapely.box(*c, *(c + 60)), shapely.box(*(c + 100), *(c + 130))]
                                    for c in rng.uniform(0, 300, size=(60, 2))])
    for kind, geoms in (("line", lines), ("polygon", stars), ("polygon", multis)):
        for r in (100.0, 200.0):
            got = Rings(geoms, kind).clipped(np.arange(60), centres, r)
            buffers = shapely.buffer(shapely.points(centres), r, quad_segs=QUAD_SEGS)
            parts = shapely.intersection(buffers, geoms)
            want = shapely.length(parts) if kind == "line" else shapely.area(parts)
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-6)


def test_same_feature_for_many_centres() -> None:
    line = shapely.LineString([(0, 0), (1000, 0)])
    centres = np.array([[0.0, 0.0], [500.0, 0.0], [500.0, 150.0]])
    got = Rings(np.array([line]), "line").clipped(np.zeros(3, dtype=int), centres, 100.0)
    np.testing.assert_allclose(got, [100.0, 200.0, 0.0], atol=1e-9)
