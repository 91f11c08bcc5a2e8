"""Radius filter over item coordinates: which places lie within R km (haversine) of a point.

Built once per catalog. Items are sorted by (latitude strip, longitude) with strips ``STRIP_DEG`` tall, so one key
``strip * 1000 + lon + 180`` is globally sorted. A query takes the strips its latitude band touches and, in each, the
longitude window of the circle, all with one vectorised ``np.searchsorted``; only those items get the exact haversine
distance. The result is the complete set of items in the radius, so callers can rank exactly among them: "top-K then
filter" would silently return fewer than K places.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

EARTH_RADIUS_KM = 6371.0088  # mean Earth radius (IUGG)
STRIP_DEG = 0.05  # latitude strip height (~5.6 km): small radii touch one or two strips
_KM_PER_DEG_LAT = np.pi * EARTH_RADIUS_KM / 180.0
_STRIP_KEY = 1000.0  # strip offset in the sort key; larger than the 360-degree longitude span


def haversine_km(lat: float, lon: float, lats: npt.NDArray[np.float64], lons: npt.NDArray[np.float64]
                 ) -> npt.NDArray[np.float64]:
    """Great-circle distance in km from one point to many.

    Args:
        lat, lon: the query point in degrees.
        lats, lons: (n,) degrees.

    Returns:
        (n,) distances in km.
    """
    p1, p2 = np.radians(lat), np.radians(lats)
    dphi = p2 - p1
    dlmb = np.radians(lons - lon)
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlmb / 2) ** 2
    km: npt.NDArray[np.float64] = 2.0 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
    return km


def lon_half_width(lat: float, radius_km: float) -> float | None:
    """Exact half-width in degrees of longitude of a circle (Matuschek 2008); None when it contains a pole."""
    delta = radius_km / EARTH_RADIUS_KM  # angular radius
    if abs(lat) + np.degrees(delta) >= 90.0:
        return None
    ratio = np.sin(delta) / np.cos(np.radians(lat))
    return None if ratio >= 1.0 else float(np.degrees(np.arcsin(ratio)))


def _ranges(starts: npt.NDArray[np.int64], stops: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Concatenation of ``arange(start, stop)`` for each pair, without a Python loop."""
    lengths = np.maximum(stops - starts, 0)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets: npt.NDArray[np.int64] = np.repeat(starts - np.cumsum(np.r_[0, lengths[:-1]]), lengths)
    return np.arange(total, dtype=np.int64) + offsets


class GeoFilter:
    """Exact radius queries over a fixed set of points, indexed by latitude strip and longitude.

    Items with missing (NaN) coordinates are never returned.

    Args:
        lats, lons: (n,) item coordinates in degrees, in catalog row order.
    """

    def __init__(self, lats: npt.ArrayLike, lons: npt.ArrayLike) -> None:
        lats = np.asarray(lats, dtype=np.float64)
        lons = np.asarray(lons, dtype=np.float64)
        self.n_items = len(lats)
        valid = np.flatnonzero(np.isfinite(lats) & np.isfinite(lons))
        keys = self._strip(lats[valid]) * _STRIP_KEY + (lons[valid] + 180.0)
        order = np.argsort(keys, kind="stable")
        self._keys = keys[order]
        self._rows = valid[order].astype(np.int64)  # catalog rows in key order
        self._lats = lats[self._rows]
        self._lons = lons[self._rows]

    @staticmethod
    def _strip(lats: npt.ArrayLike) -> npt.NDArray[np.float64]:
        return np.floor((np.asarray(lats, dtype=np.float64) + 90.0) / STRIP_DEG)

    @property
    def n_located(self) -> int:
        """How many items have coordinates."""
        return len(self._rows)

    def within(self, lat: float, lon: float, radius_km: float
               ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """All items within ``radius_km`` of (lat, lon), inclusive.

        Returns:
            (rows, distances): catalog rows in ascending row order and their distances in km.
        """
        pos = self._candidates(lat, lon, radius_km)
        dist = haversine_km(lat, lon, self._lats[pos], self._lons[pos])
        inside = dist <= radius_km
        rows, dist = self._rows[pos[inside]], dist[inside]
        order = np.argsort(rows, kind="stable")
        return rows[order], dist[order]

    def _candidates(self, lat: float, lon: float, radius_km: float) -> npt.NDArray[np.int64]:
        """Positions (in key order) of items inside the circle's latitude band and longitude window."""
        band = radius_km / _KM_PER_DEG_LAT * (1 + 1e-9) + 1e-9
        first, last = self._strip([max(-90.0, lat - band), min(90.0, lat + band)])
        strips = np.arange(first, last + 1) * _STRIP_KEY  # (s,) key offsets of the strips touched
        half = lon_half_width(lat, radius_km)
        if half is None or half >= 180.0:
            windows = [(0.0, 360.0)]
        else:
            half = half * (1 + 1e-9) + 1e-9
            lo, hi = lon - half + 180.0, lon + half + 180.0
            windows = [(max(lo, 0.0), min(hi, 360.0))]
            if lo < 0.0:  # the window wraps across the antimeridian
                windows.append((lo + 360.0, 360.0))
            if hi > 360.0:
                windows.append((0.0, hi - 360.0))
        lows = np.concatenate([strips + w[0] for w in windows])
        highs = np.concatenate([strips + w[1] for w in windows])
        starts = np.searchsorted(self._keys, lows, side="left")
        stops = np.searchsorted(self._keys, highs, side="right")
        return _ranges(starts, stops)  # strips and windows are disjoint: no duplicates
