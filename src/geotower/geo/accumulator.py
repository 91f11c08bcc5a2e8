"""Per-item sums of the OSM features near each place: counts and lengths/areas within each radius.

:class:`FeatureAccumulator` takes one chunk of a layer's features at a time (any order, each feature once): one
STRtree query over the items' points returns every (feature, item) candidate within the largest radius. Most
pairs are decided for every radius by the feature's bounding box alone (wholly inside the 64-gon's inscribed
disc, or beyond r), and summed with one ``np.bincount``; only the (pair, radius) cells the buffer's boundary may
cross are clipped edge by edge (:mod:`geotower.geo.clip`), which also gives their exact distance. GEOS is left
for the thin ring between the inscribed disc and the 64-gon. ``clipped`` mode measures only the part of each
feature inside the buffer; ``whole`` its full size.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely

from geotower import schema as S
from geotower.geo.clip import QUAD_SEGS, Rings
from geotower.schema import Layer

# The 64-gon contains the disc of this radius (times r): a distance below it means "intersects" without a test.
_INSCRIBED = math.cos(math.pi / (4 * QUAD_SEGS)) * (1.0 - 1e-9)
_WEDGE = 2 * math.pi / (4 * QUAD_SEGS)  # angle between the 64-gon's vertices
_SURE_MEASURE = 1e-3  # a clipped length (m) or area (m^2) above this is a sure intersection, whatever the rounding
_BLOCK_PAIRS = 65_536  # (feature, item) pairs per block: small enough that the temporaries stay in cache
_CACHED_BUFFERS = 150_000  # item buffers kept across blocks (~1.2 KB each), all radii together


class FeatureAccumulator:
    """Running per-item sums over feature chunks; chunks can come in any order, each feature exactly once.

    Args:
        points: (n_items,) shapely points in a metric CRS.
        radii: buffer radii in meters (column order).
        mode: "clipped" or "whole".
    """

    def __init__(self, points: np.ndarray, radii: tuple[int, ...], mode: str) -> None:
        self.points, self.radii, self.mode = points, tuple(radii), mode
        self.tree = shapely.STRtree(points)
        self.xy = shapely.get_coordinates(points)  # (n_items, 2)
        self.x, self.y = np.ascontiguousarray(self.xy[:, 0]), np.ascontiguousarray(self.xy[:, 1])
        self.counts: dict[str, np.ndarray] = {}  # layer -> (n_radii, n_items)
        self.measures: dict[str, np.ndarray] = {}
        self._block = 2048  # features per block, adapted to the pair density
        self._buffer_cache: dict[int, np.ndarray] = {}  # radius -> (n_items,) buffers built so far (None: not yet)

    def add(self, layer: Layer, geoms: np.ndarray) -> None:
        """Add one chunk of ``layer``'s features (metric CRS, cleaned) to the sums.

        The chunk is processed in blocks sized so that each holds about ``_BLOCK_PAIRS`` (feature, item) pairs,
        learnt from the previous block: memory stays bounded however dense the items are.
        """
        self.counts.setdefault(layer.name, np.zeros((len(self.radii), len(self.points))))
        self.measures.setdefault(layer.name, np.zeros((len(self.radii), len(self.points))))
        start = 0
        while start < len(geoms):
            block = geoms[start:start + self._block]
            pairs = self._add_block(layer, block)
            start += len(block)
            self._block = int(np.clip(len(block) * _BLOCK_PAIRS / max(pairs, 1), 64, 65_536))

    def _add_block(self, layer: Layer, geoms: np.ndarray) -> int:
        """Sums for one block of features; returns its number of candidate (feature, item) pairs.

        Most pairs are decided by the feature's bounding box alone, with squared distances: wholly inside the
        64-gon's inscribed disc of radius r (the box's farthest corner is), or outside the r-buffer (its nearest
        point is farther than r). A pair wholly inside radius k is wholly inside every larger one, so those sums
        are one ``np.bincount`` over (first such radius, item) and a cumulative sum over radii. Only the pairs
        left undecided for some radius, the ones the buffer's boundary may cross, get exact distances and
        clipping (:meth:`_add_undecided`).
        """
        n, n_radii = len(self.points), len(self.radii)
        radii = np.asarray(self.radii, dtype=float)
        rmax = float(radii.max())
        bounds = shapely.bounds(geoms)
        feat, item = self.tree.query(shapely.box(*(bounds + np.array([-rmax, -rmax, rmax, rmax])).T))
        x, y = self.x[item], self.y[item]
        if layer.kind == "point":  # a point's box is the point: both bounds are its distance
            dx, dy = np.ascontiguousarray(bounds[:, 0])[feat] - x, np.ascontiguousarray(bounds[:, 1])[feat] - y
            lower2 = far2 = dx * dx + dy * dy
        else:
            lower2, far2 = _box_distances2(bounds, feat, x, y)
        inner2 = (radii * _INSCRIBED) ** 2
        first_in = sum((far2 > b).astype(np.intp) for b in inner2)  # first radius wholly holding it (n_radii: none)
        whole = None if layer.measure is None else _measure(geoms, layer.kind)
        key = first_in * n + item
        inside = np.bincount(key, minlength=(n_radii + 1) * n).reshape(n_radii + 1, n)[:n_radii]
        self.counts[layer.name] += np.cumsum(inside, axis=0)
        if whole is not None:
            sums = np.bincount(key, weights=whole[feat], minlength=(n_radii + 1) * n).reshape(n_radii + 1, n)
            self.measures[layer.name] += np.cumsum(sums[:n_radii], axis=0)
        # undecided for radius k: the box reaches within r, and its farthest corner lies beyond the inscribed disc
        reach = [(lower2 <= r * r) & (far2 > b) for r, b in zip(radii, inner2, strict=True)]
        rows = np.flatnonzero(np.logical_or.reduce(reach))
        lower2, far2 = lower2[rows], far2[rows]
        undecided = (lower2[:, None] <= radii**2) & (far2[:, None] > inner2)  # (rows, radii)
        if len(rows):
            self._add_undecided(layer, geoms, feat[rows], item[rows], undecided, np.sqrt(lower2), whole)
        return len(feat)

    def _add_undecided(self, layer: Layer, geoms: np.ndarray, feat: np.ndarray, item: np.ndarray,
                       mask: np.ndarray, lower: np.ndarray, whole: np.ndarray | None) -> None:
        """Exact hits, and clipped (or whole) measures, of the pairs whose (pair, radius) ``mask`` is set.

        GEOS distances are computed only where cheap bounds cannot decide a radius: the distance to the feature's
        box (lower bound) and to its first vertex (upper bound). Where a pair is decided, the upper bound stands
        in for the distance: it classifies every radius the same way (see :meth:`_hits`).
        """
        if whole is not None and self.mode == "clipped":
            self._add_clipped(layer, geoms, feat, item, mask)
            return
        n = len(self.points)
        radii = np.asarray(self.radii, dtype=float)
        dist = np.hypot(*(_first_vertices(geoms)[feat] - self.xy[item]).T)  # upper bound; exact for points
        if layer.kind != "point":
            unsure = ((lower[:, None] <= radii) & (dist[:, None] > radii * _INSCRIBED) & mask).any(axis=1)
            dist[unsure] = shapely.distance(self.points[item[unsure]], geoms[feat[unsure]])
        points = layer.kind == "point"
        hits = np.column_stack([self._hits(r, feat, item, dist, geoms, points) for r in self.radii]) & mask
        for k in range(len(self.radii)):
            self.counts[layer.name][k] += np.bincount(item[hits[:, k]], minlength=n)
        if whole is None:
            return
        values = np.where(hits, whole[feat][:, None], 0.0)
        for k in range(len(self.radii)):
            self.measures[layer.name][k] += np.bincount(item, weights=values[:, k], minlength=n)

    def _add_clipped(self, layer: Layer, geoms: np.ndarray, feat: np.ndarray, item: np.ndarray,
                     mask: np.ndarray) -> None:
        """Clipped mode, lines and polygons: every undecided (pair, radius) is clipped, and the same edge sweep
        gives the exact distance to the feature, so no GEOS distance is needed; only a pair whose distance falls
        in the thin ring between the inscribed disc and the 64-gon gets the exact ``intersects`` test."""
        n, n_radii = len(self.points), len(self.radii)
        jobs = np.flatnonzero(mask.ravel())  # (pair, radius) cells, pair-major
        pair, k = jobs // n_radii, jobs % n_radii
        r = np.asarray(self.radii, dtype=float)[k]
        values, dist = Rings(geoms, layer.kind).clip_jobs(feat[pair], self.xy[item[pair]], r)
        hit = dist <= r * _INSCRIBED
        ring = np.flatnonzero(~hit & (dist <= r * (1.0 + 1e-9)))
        hit[ring] = values[ring] > _SURE_MEASURE  # a part of positive length/area inside: it intersects
        ring = ring[~hit[ring]]
        for kk in np.unique(k[ring]):
            sel = ring[k[ring] == kk]
            hit[sel] = shapely.intersects(self._buffers(self.radii[kk], item[pair[sel]]), geoms[feat[pair[sel]]])
        key = k[hit] * n + item[pair[hit]]
        self.counts[layer.name] += np.bincount(key, minlength=n_radii * n).reshape(n_radii, n)
        self.measures[layer.name] += np.bincount(key, weights=values[hit], minlength=n_radii * n).reshape(n_radii, n)

    def _hits(self, r: int, feat: np.ndarray, item: np.ndarray, dist: np.ndarray, geoms: np.ndarray,
              points: bool) -> np.ndarray:
        """Which pairs intersect the r-buffer: sure inside the inscribed disc, exact test only in the thin ring."""
        hit = dist <= r * _INSCRIBED
        ring = np.flatnonzero(~hit & (dist <= r))
        if len(ring) and points:  # a point is in the buffer iff it is in the 64-gon: no GEOS needed
            sure, inside = _in_gon(geoms[feat[ring]], self.xy[item[ring]], r)
            hit[ring[sure]] = inside[sure]
            ring = ring[~sure]
        if len(ring):
            hit[ring] = shapely.intersects(self._buffers(r, item[ring]), geoms[feat[ring]])
        return hit

    def _buffers(self, r: int, item: np.ndarray) -> np.ndarray:
        """The r-buffers (64-gons) of ``item``, built only for the items that need the exact test (~1 KB each).

        Up to :data:`_CACHED_BUFFERS` buffers (all radii together) are kept across blocks, so an item's buffer is
        built once rather than once per block; beyond that they are built per call.
        """
        cache = self._buffer_cache.get(r)
        if cache is None:
            if len(self.points) * len(self.radii) > _CACHED_BUFFERS:
                near, inverse = np.unique(item, return_inverse=True)
                built: np.ndarray = shapely.buffer(self.points[near], r, quad_segs=QUAD_SEGS)
                return built[inverse]
            cache = self._buffer_cache[r] = np.full(len(self.points), None, dtype=object)
        missing = np.unique(item[shapely.is_missing(cache[item])])
        if len(missing):
            cache[missing] = shapely.buffer(self.points[missing], r, quad_segs=QUAD_SEGS)
        out: np.ndarray = cache[item]
        return out

    def frame(self, ids: np.ndarray, layers: tuple[Layer, ...]) -> pd.DataFrame:
        """``item_id`` + ``geo_feature_columns(radii, layers)`` in order; layers never added are 0."""
        n = len(ids)
        data: dict[str, np.ndarray] = {S.ITEM_ID: ids}
        for layer in layers:
            counts = self.counts.get(layer.name, np.zeros((len(self.radii), n)))
            measures = self.measures.get(layer.name, np.zeros((len(self.radii), n)))
            for k, r in enumerate(self.radii):
                data[f"{layer.name}_{r}m_count"] = counts[k].astype(np.float64)
                if layer.measure is not None:
                    data[f"{layer.name}_{r}m_{layer.measure}"] = measures[k].astype(np.float64)
        out = pd.DataFrame(data)
        return out[[S.ITEM_ID, *S.geo_feature_columns(self.radii, layers)]]


def _in_gon(points: np.ndarray, centres: npt.NDArray[np.float64],
            r: float) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Whether each point lies in the r-buffer (the 64-gon, a vertex at angle 0) of its centre (m, 2).

    In the wedge between two vertex rays the 64-gon is one half-plane. Returns (sure, inside): points within a
    micrometre of the edge are not sure and go to the exact GEOS test.
    """
    rel = shapely.get_coordinates(points) - centres
    mid = (np.floor(np.arctan2(rel[:, 1], rel[:, 0]) / _WEDGE) + 0.5) * _WEDGE
    gap = rel[:, 0] * np.cos(mid) + rel[:, 1] * np.sin(mid) - r * math.cos(_WEDGE / 2)
    return np.abs(gap) > 1e-6, gap <= 0


def _box_distances2(bounds: npt.NDArray[np.float64], feat: npt.NDArray[np.intp], x: npt.NDArray[np.float64],
                    y: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Squared distances from each point (x, y) to the nearest and the farthest point of its feature's box."""
    x0, y0, x1, y1 = (np.ascontiguousarray(bounds[:, c])[feat] for c in range(4))
    dx_lo, dx_hi, dy_lo, dy_hi = x0 - x, x - x1, y0 - y, y - y1
    gap_x, gap_y = np.maximum(np.maximum(dx_lo, dx_hi), 0.0), np.maximum(np.maximum(dy_lo, dy_hi), 0.0)
    far_x, far_y = np.maximum(-dx_lo, -dx_hi), np.maximum(-dy_lo, -dy_hi)
    return gap_x * gap_x + gap_y * gap_y, far_x * far_x + far_y * far_y


def _first_vertices(geoms: np.ndarray) -> npt.NDArray[np.float64]:
    """(n_features, 2) first vertex of each feature: a point of it, so its distance bounds the feature's."""
    coords, owner = shapely.get_coordinates(geoms, return_index=True)
    first: npt.NDArray[np.float64] = coords[np.searchsorted(owner, np.arange(len(geoms)))]
    return first


def _measure(geoms: np.ndarray, kind: str) -> np.ndarray:
    out: np.ndarray = shapely.length(geoms) if kind == "line" else shapely.area(geoms)
    return out
