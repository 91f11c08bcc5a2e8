"""Per-item sums of the OSM features near each place: counts and lengths/areas within each radius.

:class:`FeatureAccumulator` takes one chunk of a layer's features at a time (any order, each feature once): one
STRtree query over the items' points returns every (feature, item) pair within the largest radius, a pair closer
than the 64-gon's inscribed disc intersects without a GEOS test, and sums are ``np.bincount``. ``clipped`` mode
measures only the part of each feature inside the buffer (:mod:`geotower.geo.clip`); ``whole`` its full size.
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
_BLOCK_PAIRS = 500_000  # (feature, item) pairs per block: ~100 MB of temporaries at most


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
        self.counts: dict[str, np.ndarray] = {}  # layer -> (n_radii, n_items)
        self.measures: dict[str, np.ndarray] = {}
        self._block = 2048  # features per block, adapted to the pair density

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
        """Sums for one block of features; returns its number of (feature, item) pairs."""
        n = len(self.points)
        counts, measures = self.counts[layer.name], self.measures[layer.name]
        feat, item, dist = self._pairs(geoms, layer.kind == "point")
        whole = None if layer.measure is None else _measure(geoms, layer.kind)
        spread, shapes = None, None
        if whole is not None and self.mode == "clipped":
            spread = _farthest_corner(shapely.bounds(geoms)[feat], self.xy[item])  # >= farthest vertex
            shapes = Rings(geoms, layer.kind)
        for k, r in enumerate(self.radii):
            hit = self._hits(r, feat, item, dist, geoms)
            counts[k] += np.bincount(item[hit], minlength=n)
            if whole is not None:
                values = whole[feat[hit]]
                if shapes is not None and spread is not None:  # clip only pairs not wholly inside the buffer
                    partial = np.flatnonzero(spread[hit] > r * _INSCRIBED)
                    values[partial] = shapes.clipped(feat[hit][partial], self.xy[item[hit][partial]], r)
                measures[k] += np.bincount(item[hit], weights=values, minlength=n)
        return len(feat)

    def _pairs(self, geoms: np.ndarray, points: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(feature, item, distance) for every pair within the largest radius.

        Candidates come from one envelope query (features' boxes padded by the radius). GEOS distances are computed
        only where cheap bounds cannot decide a radius: the distance to the feature's box (lower bound) and to its
        first vertex (upper bound). Where a pair is decided, the upper bound stands in for the distance: it
        classifies every radius the same way (see :meth:`_hits`).
        """
        rmax = max(self.radii)
        bounds = shapely.bounds(geoms)
        feat, item = self.tree.query(shapely.box(*(bounds + np.array([-rmax, -rmax, rmax, rmax])).T))
        xy = self.xy[item]
        coords, owner = shapely.get_coordinates(geoms, return_index=True)
        first = coords[np.searchsorted(owner, np.arange(len(geoms)))]  # (n_features, 2) first vertex
        if not points:
            gap = np.maximum(np.maximum(bounds[feat, :2] - xy, xy - bounds[feat, 2:]), 0.0)
            lower = np.hypot(gap[:, 0], gap[:, 1])
            keep = lower <= rmax
            feat, item, lower, xy = feat[keep], item[keep], lower[keep], xy[keep]
        dist = np.hypot(*(first[feat] - xy).T)  # upper bound; exact for points
        if not points:
            radii = np.asarray(self.radii, dtype=float)
            undecided = ((lower[:, None] <= radii) & (dist[:, None] > radii * _INSCRIBED)).any(axis=1)
            dist[undecided] = shapely.distance(self.points[item[undecided]], geoms[feat[undecided]])
        near = dist <= rmax
        return feat[near], item[near], dist[near]

    def _hits(self, r: int, feat: np.ndarray, item: np.ndarray, dist: np.ndarray, geoms: np.ndarray) -> np.ndarray:
        """Which pairs intersect the r-buffer: sure inside the inscribed disc, exact test only in the thin ring."""
        hit = dist <= r * _INSCRIBED
        ring = ~hit & (dist <= r)
        if ring.any():
            # buffers only for the items that need the exact test: all of them would cost ~1 KB per item and radius
            near, inverse = np.unique(item[ring], return_inverse=True)
            buffers = shapely.buffer(self.points[near], r, quad_segs=QUAD_SEGS)
            hit[ring] = shapely.intersects(buffers[inverse], geoms[feat[ring]])
        return hit

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


def _farthest_corner(bounds: npt.NDArray[np.float64], xy: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Distance from each point to the farthest corner of its feature's box: a feature within it is inside."""
    dx = np.maximum(np.abs(xy[:, 0] - bounds[:, 0]), np.abs(bounds[:, 2] - xy[:, 0]))
    dy = np.maximum(np.abs(xy[:, 1] - bounds[:, 1]), np.abs(bounds[:, 3] - xy[:, 1]))
    return np.hypot(dx, dy)


def _measure(geoms: np.ndarray, kind: str) -> np.ndarray:
    out: np.ndarray = shapely.length(geoms) if kind == "line" else shapely.area(geoms)
    return out
