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


def _geos_all(geoms: np.ndarray, kind: str, centres: np.ndarray, r: float) -> np.ndarray:
    buffers = shapely.buffer(shapely.points(centres), r, quad_segs=QUAD_SEGS)
    parts = shapely.intersection(buffers, geoms)
    return shapely.length(parts) if kind == "line" else shapely.area(parts)


def test_polygon_much_larger_than_the_buffers() -> None:
    # a 5 km square with a 1 km hole: places deep inside (the whole 64-gon), near the outer edge, in the hole,
    # near the hole's edge, outside; only the few edges near each place are swept
    outer = shapely.box(0, 0, 5000, 5000).exterior.coords
    hole = shapely.box(2000, 2000, 3000, 3000).exterior.coords
    big = shapely.Polygon(outer, [hole])
    ring = shapely.Polygon([(2500 + 2400 * np.cos(t), 2500 + 2400 * np.sin(t)) for t in np.linspace(0, 6.2, 500)])
    centres = np.array([[1000.0, 1000.0], [40.0, 2500.0], [2500.0, 2500.0], [1950.0, 2200.0], [-80.0, -80.0],
                        [4990.0, 10.0], [2950.0, 3050.0]])
    for geom in (big, ring):
        geoms = np.array([geom] * len(centres))
        for r in (100.0, 200.0, 500.0):
            got = Rings(geoms, "polygon").clipped(np.arange(len(centres)), centres, r)
            np.testing.assert_allclose(got, _geos_all(geoms, "polygon", centres, r), rtol=1e-9, atol=1e-6)


def test_place_on_a_boundary_vertex_or_edge() -> None:
    # centres exactly on an edge, on a vertex, on a hole's edge: the sweep of every edge takes over
    poly = shapely.Polygon(shapely.box(0, 0, 400, 300).exterior.coords,
                           [shapely.box(100, 100, 200, 200).exterior.coords])
    centres = np.array([[200.0, 0.0], [0.0, 0.0], [400.0, 300.0], [150.0, 100.0], [100.0, 150.0], [0.0, 150.0]])
    geoms = np.array([poly] * len(centres))
    for r in (100.0, 200.0, 500.0):
        got = Rings(geoms, "polygon").clipped(np.arange(len(centres)), centres, r)
        np.testing.assert_allclose(got, _geos_all(geoms, "polygon", centres, r), rtol=1e-9, atol=1e-6)


def test_line_crossing_a_buffer_several_times() -> None:
    # a zigzag through the centre that leaves and re-enters the 100 m buffer five times, and a spiral
    zig = shapely.LineString([(x, 1950.0 if i % 2 else 2130.0) for i, x in enumerate(range(500, 1600, 60))])
    t = np.linspace(0, 8 * np.pi, 400)
    spiral = shapely.LineString(np.column_stack([1000 + 30 * t * np.cos(t), 2000 + 30 * t * np.sin(t)]))
    geoms = np.array([zig, spiral, zig])
    centres = np.array([[1000.0, 2000.0], [1000.0, 2000.0], [1030.0, 1990.0]])
    for r in (100.0, 200.0, 500.0):
        got = Rings(geoms, "line").clipped(np.arange(3), centres, r)
        np.testing.assert_allclose(got, _geos_all(geoms, "line", centres, r), rtol=1e-9, atol=1e-6)


@pytest.mark.parametrize("kind", ["line", "polygon"])
def test_several_radii_at_once_equal_one_at_a_time(kind: str) -> None:
    # clipped_radii computes only the (pair, radius) cells asked for, each equal to its own single-radius value
    rng = np.random.default_rng(1)
    if kind == "line":
        geoms = shapely.linestrings(rng.uniform(0, 1200, size=(40, 6, 2)))
    else:
        angles = np.sort(rng.uniform(0, 2 * np.pi, size=(40, 12)), axis=1)
        radius = rng.uniform(50, 600, size=(40, 12))
        centre = rng.uniform(300, 900, size=(40, 1, 2))
        geoms = shapely.polygons(centre + np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=2))
    centres = rng.uniform(0, 1200, size=(40, 2))
    radii = (100.0, 200.0, 500.0)
    need = rng.random((40, 3)) < 0.6
    got = Rings(geoms, kind).clipped_radii(np.arange(40), centres, radii, need)
    for k, r in enumerate(radii):
        want = np.where(need[:, k], _geos_all(geoms, kind, centres, r), 0.0)
        np.testing.assert_allclose(got[:, k], want, rtol=1e-9, atol=1e-6)
