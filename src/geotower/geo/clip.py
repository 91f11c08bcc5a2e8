"""Length/area of features clipped to the items' 64-gon buffers, for many (feature, item) pairs at once.

GEOS overlay (``shapely.intersection``) costs 20-35 us per pair, which dominated the clipped features. The buffer
is a convex regular polygon, so clipping needs no general overlay. Each (feature, item, radius) job expands the
feature's edges once, drops those farther than r (they cut nothing; their nearest one gives the feature's exact
distance), and cuts the rest at the 64-gon's vertex rays: inside one wedge the buffer is a half-plane, so a
segment's length and a fan triangle's area there are closed forms. A ring's area is the sum of its edges' fan
triangles minus the 64-gon sectors they span, plus the whole 64-gon where the feature contains the item. Holes
count negatively, multi-part features sum their parts. Coordinates are taken relative to each item so rounding
stays at the millimetre scale of UTM meters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import shapely

_Floats = npt.NDArray[np.float64]
_Ints = npt.NDArray[np.intp]


def _norm(v: _Floats) -> _Floats:
    """Euclidean length of each row of ``v`` (m, 2)."""
    return np.hypot(v[:, 0], v[:, 1])


def _bin_sum(bins: _Ints, weights: _Floats, n: int) -> _Floats:
    """Sum of ``weights`` per bin 0..n-1: ``np.bincount`` with weights (float64; numpy's stubs say int)."""
    return np.asarray(np.bincount(bins, weights=weights, minlength=n), dtype=np.float64)

QUAD_SEGS = 16  # geopandas' default buffer resolution: a 64-gon, as in the original feature table
_SEG_BLOCK = 65_536  # segment-pairs per Cyrus-Beck block: bounds the (block x 64) temporaries to ~34 MB each
_ON_EDGE2 = 1e-6  # squared distance (m^2) below which a centre counts as on an edge
_EDGE_BLOCK = 131_072  # (edge, item) rows expanded at once when clipping: ~150 MB of temporaries at most


def _unit_window() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Outward unit normals (64, 2) and offsets (64,) of GEOS's unit-radius point buffer (quad_segs=16)."""
    ring = shapely.get_coordinates(shapely.buffer(shapely.Point(0.0, 0.0), 1.0, quad_segs=QUAD_SEGS))
    edges = np.diff(ring, axis=0)  # (64, 2)
    normals = np.column_stack([edges[:, 1], -edges[:, 0]])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    offsets = np.einsum("ij,ij->i", normals, ring[:-1])
    flip = offsets < 0  # make every normal point outward, whatever the ring's orientation
    normals[flip] *= -1
    offsets[flip] *= -1
    return normals, offsets


_NORMALS, _OFFSETS = _unit_window()
_INNER = float(_OFFSETS.min()) * (1.0 - 1e-9)  # radius of the inscribed disc of the unit 64-gon, rounded down


def _expand(starts: _Ints, counts: _Ints) -> tuple[np.ndarray, np.ndarray]:
    """Ragged expansion: for each owner o, the indices ``starts[o] .. starts[o] + counts[o] - 1``."""
    owner = np.repeat(np.arange(len(counts)), counts)
    first = np.cumsum(counts) - counts
    return owner, np.arange(int(counts.sum())) - first[owner] + starts[owner]


class Rings:
    """A chunk's features broken into segments (lines) or rings (polygons), ready to clip against buffers.

    Args:
        geoms: (n_features,) lines or polygons (single or multi) in a metric CRS.
        kind: "line" or "polygon".
    """

    def __init__(self, geoms: np.ndarray, kind: str) -> None:
        self.kind, self.geoms = kind, geoms
        parts, part_feat = shapely.get_parts(geoms, return_index=True)
        if kind == "polygon":
            rings, ring_part = shapely.get_rings(parts, return_index=True)
            first = np.r_[True, ring_part[1:] != ring_part[:-1]]
            # exterior +, holes -; times the ring's orientation, so every ring's fan sums to +area inside it
            self.sign = np.where(first, 1.0, -1.0)
            self.orient = self.sign * np.where(shapely.is_ccw(rings), 1.0, -1.0)
            owner = part_feat[ring_part]
            coords, ring_of = shapely.get_coordinates(rings, return_index=True)
            last = np.r_[ring_of[1:] != ring_of[:-1], True]
            self.coords, self.edge_ring = coords[~last], ring_of[~last]  # drop each ring's closing vertex
            self.v_count = np.bincount(self.edge_ring, minlength=len(rings))
            self.v_start = np.cumsum(self.v_count) - self.v_count
            nxt = np.arange(1, len(self.coords) + 1)
            ends = self.v_start + self.v_count
            nxt[ends[self.v_count > 0] - 1] = self.v_start[self.v_count > 0]
            self.edge_a, self.edge_d = self.coords, self.coords[nxt] - self.coords  # edge i: vertex i -> next
            edges_per_feat = np.bincount(owner, weights=self.v_count, minlength=len(geoms)).astype(np.intp)
        else:
            coords, part_of = shapely.get_coordinates(parts, return_index=True)
            same = part_of[1:] == part_of[:-1]
            self.edge_a = coords[:-1][same]
            self.edge_d = coords[1:][same] - self.edge_a
            owner = part_feat[part_of[:-1][same]]
            edges_per_feat = np.bincount(owner, minlength=len(geoms))
        self.count = np.bincount(owner, minlength=len(geoms))  # segments or rings per feature
        self.start = np.cumsum(self.count) - self.count
        self.e_count = edges_per_feat  # edges per feature (segments of lines, ring edges of polygons), contiguous
        self.e_start = np.cumsum(edges_per_feat) - edges_per_feat
        # the same edges as contiguous columns (gathers and arithmetic on 1-d arrays are several times faster)
        self.ax, self.ay = np.ascontiguousarray(self.edge_a[:, 0]), np.ascontiguousarray(self.edge_a[:, 1])
        self.dx, self.dy = np.ascontiguousarray(self.edge_d[:, 0]), np.ascontiguousarray(self.edge_d[:, 1])
        dd = self.dx * self.dx + self.dy * self.dy
        self.inv_dd = np.divide(1.0, dd, out=np.zeros_like(dd), where=dd > 0)  # 0 for a zero-length edge

    def clipped(self, feat: _Ints, centers: _Floats, r: float) -> npt.NDArray[np.float64]:
        """Length (lines) or area (polygons) of ``feat[j]`` inside the r-buffer around ``centers[j]`` (m, 2)."""
        need = np.ones((len(feat), 1), dtype=bool)
        return self.clipped_radii(feat, centers, (r,), need)[:, 0]

    def clipped_radii(self, feat: _Ints, centers: _Floats, radii: tuple[float, ...],
                      need: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
        """Length or area of ``feat[j]`` inside each r-buffer around ``centers[j]``, where ``need[j, k]``.

        The edges of each pair are expanded and measured against the centre once for all radii (relative
        coordinates, distance to the centre, the 64-gon sector they span), then each radius sweeps only its
        edges within r. Entries not needed are 0.

        Args:
            feat: (m,) feature index of each pair.
            centers: (m, 2) the pair's item.
            radii: buffer radii (columns).
            need: (m, n_radii) which (pair, radius) values to compute.

        Returns:
            (m, n_radii) float64.
        """
        jobs = np.flatnonzero(need.ravel())  # one job per needed (pair, radius)
        pair, k = jobs // len(radii), jobs % len(radii)
        values, _ = self.clip_jobs(feat[pair], centers[pair], np.asarray(radii, dtype=float)[k])
        out = np.zeros((len(feat), len(radii)))
        out[pair, k] = values
        return out

    def clip_jobs(self, feat: _Ints, centers: _Floats, r: _Floats) -> tuple[_Floats, _Floats]:
        """Length or area of ``feat[j]`` inside the ``r[j]``-buffer around ``centers[j]``, and the exact distance
        from ``centers[j]`` to the feature (0 inside a polygon), which the edge sweep gets for free.

        Jobs are processed in blocks of about :data:`_EDGE_BLOCK` expanded edges.

        Returns:
            (values (m,), distances (m,)).
        """
        values, dist = np.zeros(len(feat)), np.zeros(len(feat))
        ends = np.cumsum(self.e_count[feat])
        cuts = np.searchsorted(ends, np.arange(_EDGE_BLOCK, int(ends[-1]) if len(ends) else 0, _EDGE_BLOCK))
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(feat)], strict=True):
            if hi > lo:
                values[lo:hi], dist[lo:hi] = self._clip_block(feat[lo:hi], centers[lo:hi], r[lo:hi])
        return values, dist

    def _clip_block(self, feat: _Ints, centers: _Floats, r: _Floats) -> tuple[_Floats, _Floats]:
        """:meth:`clip_jobs` for one block of jobs."""
        job, idx = _expand(self.e_start[feat], self.e_count[feat])
        ax = self.ax[idx] - np.ascontiguousarray(centers[:, 0])[job]
        ay = self.ay[idx] - np.ascontiguousarray(centers[:, 1])[job]
        dx, dy = self.dx[idx], self.dy[idx]
        t = np.clip(-(ax * dx + ay * dy) * self.inv_dd[idx], 0.0, 1.0)  # nearest point of the edge to the centre
        px, py = ax + t * dx, ay + t * dy
        dist2 = px * px + py * py
        has_edges = self.e_count[feat] > 0
        nearest = np.full(len(feat), np.inf)  # distance to the nearest edge: the feature's, outside a polygon
        nearest[has_edges] = np.sqrt(np.minimum.reduceat(dist2, (np.cumsum(self.e_count[feat]) -
                                                                 self.e_count[feat])[has_edges]))
        near = np.flatnonzero(dist2 <= (r * r)[job])  # an edge farther than r cuts nothing
        job, idx, dist2 = job[near], idx[near], dist2[near]
        ax, ay, dx, dy, rr = ax[near], ay[near], dx[near], dy[near], r[job]
        bx, by = ax + dx, ay + dy
        inner2 = (rr * _INNER) ** 2  # both ends inside the inscribed disc: the edge (or its fan) is whole
        cut = np.flatnonzero((ax * ax + ay * ay > inner2) | (bx * bx + by * by > inner2))
        seg = _Segments(ax[cut], ay[cut], bx[cut], by[cut])
        if self.kind == "line":
            length = np.sqrt(dx * dx + dy * dy)
            length[cut] = _wedge_sweep(seg, rr[cut], *_angles(seg), "len")
            return _bin_sum(job, length, len(feat)), nearest
        theta_a, span = _angles(_Segments(ax, ay, bx, by))
        fan = (ax * by - ay * bx) / 2.0
        fan[cut] = _wedge_sweep(seg, rr[cut], theta_a[cut], span[cut], "area")
        fan -= rr * rr * _sector_areas(theta_a, span)
        inside = shapely.contains_xy(self.geoms[feat], centers[:, 0], centers[:, 1])
        out: npt.NDArray[np.float64] = _bin_sum(job, self.orient[self.edge_ring[idx]] * fan, len(feat))
        out += np.where(inside, polygon_area(1.0) * r * r, 0.0)
        # the item lies on (within a millimetre of) the feature's boundary: sweep every edge instead, which is
        # right wherever the centre is (the identity above needs it off the ring)
        redo = np.unique(job[dist2 <= _ON_EDGE2])
        if len(redo):
            out[redo] = self._full_sweep(feat[redo], centers[redo], r[redo])
        return out, np.where(inside, 0.0, nearest)

    def _full_sweep(self, feat: _Ints, centers: _Floats, r: _Floats) -> npt.NDArray[np.float64]:
        """Areas by sweeping every edge's fan triangle: right for any position of the centre."""
        pair, idx = _expand(self.start[feat], self.count[feat])
        full = _ring_areas_full(self.coords, self.v_start[idx], self.v_count[idx], centers[pair], r[pair])
        return _bin_sum(pair, self.sign[idx] * full, len(feat))


def _cyrus_beck(a: _Floats, b: _Floats, r: _Floats) -> npt.NDArray[np.float64]:
    """Cyrus-Beck clipping of segments against the 64-gon of radius ``r`` (per segment), in (block x 64) arrays."""
    out = np.empty(len(a))
    normals = _NORMALS
    for lo in range(0, len(a), _SEG_BLOCK):
        sa, sb = a[lo:lo + _SEG_BLOCK], b[lo:lo + _SEG_BLOCK]
        d = sb - sa
        # (m, 64): >= 0 where the start is inside edge k's half-plane
        num = _OFFSETS * r[lo:lo + _SEG_BLOCK, None] - sa @ normals.T
        den = d @ normals.T  # (m, 64): > 0 moving outward
        with np.errstate(divide="ignore", invalid="ignore"):
            t = num / den
        t_in = np.max(np.where(den < 0, t, 0.0), axis=1, initial=0.0)
        t_out = np.min(np.where(den > 0, t, 1.0), axis=1, initial=1.0)
        outside = np.any((den == 0) & (num < 0), axis=1)  # parallel to an edge and beyond it
        frac = np.where(outside, 0.0, np.clip(t_out - t_in, 0.0, None))
        out[lo:lo + _SEG_BLOCK] = frac * np.hypot(d[:, 0], d[:, 1])
    return out


def _ring_edges(coords: _Floats, v_start: _Ints, v_count: _Ints,
                centers: _Floats) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ring of each edge, edge starts, edge ends), vertices relative to the ring's centre, cyclic per ring."""
    job, idx = _expand(v_start, v_count)
    a = coords[idx] - centers[job]
    nxt = np.arange(1, len(job) + 1)
    ends = np.cumsum(v_count[v_count > 0])
    nxt[ends - 1] = ends - v_count[v_count > 0]
    return job, a, a[nxt]


def _ring_areas_full(coords: _Floats, v_start: _Ints, v_count: _Ints, centers: _Floats,
                     r: _Floats) -> npt.NDArray[np.float64]:
    """Area of each ring inside its r-buffer by sweeping every edge's fan triangle (any position of the centre)."""
    job, a, b = _ring_edges(coords, v_start, v_count, centers)
    area = np.zeros(len(job))
    for lo in range(0, len(job), _SEG_BLOCK):
        sa, sb = a[lo:lo + _SEG_BLOCK], b[lo:lo + _SEG_BLOCK]
        area[lo:lo + _SEG_BLOCK] = _fan_areas(sa, sb, r[job[lo:lo + _SEG_BLOCK]])
    return np.abs(_bin_sum(job, area, len(v_count)))


_STEP = 2 * np.pi / (4 * QUAD_SEGS)  # angle between the 64-gon's vertices (one at angle 0)


class _Segments(NamedTuple):
    """Segments a -> b relative to the centre, as four contiguous coordinate columns (m,) each."""

    ax: _Floats
    ay: _Floats
    bx: _Floats
    by: _Floats

    def take(self, rows: _Ints) -> _Segments:
        return _Segments(self.ax[rows], self.ay[rows], self.bx[rows], self.by[rows])


def _angles(seg: _Segments) -> tuple[_Floats, _Floats]:
    """Angle of each a seen from O, and the signed sweep from it to b's angle, in (-pi, pi]."""
    theta_a = np.arctan2(seg.ay, seg.ax)
    return theta_a, np.mod(np.arctan2(seg.by, seg.bx) - theta_a + np.pi, 2 * np.pi) - np.pi


def _fan_areas(a: _Floats, b: _Floats, r: _Floats) -> npt.NDArray[np.float64]:
    """Signed area of triangle (O, a, b) inside the 64-gon of circumradius r around O, per edge (m, 2).

    Edges with both ends inside the inscribed disc keep their whole triangle; only the others are swept.
    """
    inner = r * _INNER
    whole = (_norm(a) <= inner) & (_norm(b) <= inner)
    out = np.where(whole, _cross(a, b) / 2.0, 0.0)
    cut = np.flatnonzero(~whole)
    if len(cut):
        seg = _Segments(a[cut, 0], a[cut, 1], b[cut, 0], b[cut, 1])
        out[cut] = _wedge_sweep(seg, r[cut], *_angles(seg), "area")
    return out


def _wedge_sweep(seg: _Segments, r: _Floats, theta_a: _Floats, span: _Floats,
                 measure: str) -> npt.NDArray[np.float64]:
    """Cut each segment a->b at the 64-gon's vertex rays; inside one wedge the buffer is one half-plane.

    ``measure`` "area": signed area of triangle (O, a, b) inside the buffer; "len": length of a->b inside it.
    Segments collinear with the centre have no fan area and go through Cyrus-Beck for their length. ``r`` is
    per segment; ``theta_a, span`` are :func:`_angles` of the segments.
    """
    k_a = np.floor(theta_a / _STEP)
    n_pieces = (np.abs(np.floor((theta_a + span) / _STEP) - k_a) + 1).astype(np.int64)
    cross = seg.ax * seg.by - seg.ay * seg.bx
    a2, b2 = seg.ax * seg.ax + seg.ay * seg.ay, seg.bx * seg.bx + seg.by * seg.by
    degenerate = np.abs(cross) <= 1e-12 * (np.sqrt(a2 * b2) + 1e-300)
    n_pieces[degenerate] = 0
    piece_fn = _wedge_piece_area if measure == "area" else _wedge_piece_length
    h = r * np.cos(_STEP / 2)
    out = np.zeros(len(r))
    one = np.flatnonzero(n_pieces == 1)  # most segments lie in one wedge: no cut, no ray intersections
    mid = (k_a[one] + 0.5) * _STEP
    out[one] = piece_fn(seg.take(one), np.cos(mid), np.sin(mid), h[one])
    many = np.flatnonzero(n_pieces > 1)
    if len(many):
        out[many] = _pieces(seg.take(many), h[many], theta_a[many], span[many], piece_fn)
    if measure == "len" and degenerate.any():
        d = seg.take(np.flatnonzero(degenerate))
        out[degenerate] = _cyrus_beck(np.column_stack([d.ax, d.ay]), np.column_stack([d.bx, d.by]), r[degenerate])
    return out


def _pieces(seg: _Segments, h: _Floats, theta_a: _Floats, span: _Floats,
            piece_fn: Callable[[_Segments, _Floats, _Floats, _Floats], _Floats]) -> npt.NDArray[np.float64]:
    """:func:`_wedge_sweep` for segments spanning several wedges: cut at the rays, one piece per wedge."""
    k_a = np.floor(theta_a / _STEP)
    n_pieces = (np.abs(np.floor((theta_a + span) / _STEP) - k_a) + 1).astype(np.int64)
    edge, piece = _expand(np.zeros(len(h), dtype=np.int64), n_pieces)
    step = np.sign(span[edge])
    k = k_a[edge] + step * piece  # wedge of this piece (unwrapped)
    lo_angle, hi_angle = k * _STEP, (k + 1) * _STEP
    start = np.where(step >= 0, np.maximum(theta_a[edge], lo_angle), np.minimum(theta_a[edge], hi_angle))
    end_angle = theta_a[edge] + span[edge]
    stop = np.where(step >= 0, np.minimum(end_angle, hi_angle), np.maximum(end_angle, lo_angle))
    ax, ay = seg.ax[edge], seg.ay[edge]
    dx, dy = seg.bx[edge] - ax, seg.by[edge] - ay
    t0 = np.where(piece == 0, 0.0, _ray_t(ax, ay, dx, dy, start))
    t1 = np.where(piece == n_pieces[edge] - 1, 1.0, _ray_t(ax, ay, dx, dy, stop))
    pieces = _Segments(ax + t0 * dx, ay + t0 * dy, ax + t1 * dx, ay + t1 * dy)
    mid = (k + 0.5) * _STEP
    return _bin_sum(edge, piece_fn(pieces, np.cos(mid), np.sin(mid), h[edge]), len(h))


def polygon_area(r: float) -> float:
    """Area of the buffer: the regular 64-gon of circumradius r (a vertex at angle 0, as in the wedge sweep)."""
    return float(4 * QUAD_SEGS * (r * np.cos(_STEP / 2)) ** 2 * np.tan(_STEP / 2))


def _sector_areas(theta_a: _Floats, span: _Floats) -> npt.NDArray[np.float64]:
    """Signed area of the unit 64-gon between the rays at ``theta_a`` and ``theta_a + span`` (scales with r^2)."""
    return _sweep_area(theta_a + span, 1.0) - _sweep_area(theta_a, 1.0)


def _sweep_area(theta: _Floats, r: float) -> npt.NDArray[np.float64]:
    """Area of the 64-gon swept counter-clockwise from angle 0 to ``theta`` (any real angle, unwrapped)."""
    k = np.floor(theta / _STEP)
    h2 = float((r * np.cos(_STEP / 2)) ** 2)
    half = float(np.tan(_STEP / 2))
    return k * h2 * half + h2 / 2 * (np.tan(theta - (k + 0.5) * _STEP) + half)


def _ray_t(ax: _Floats, ay: _Floats, dx: _Floats, dy: _Floats, angle: _Floats) -> npt.NDArray[np.float64]:
    """Parameter t where segment a + t d meets the ray from O at ``angle``."""
    ux, uy = np.cos(angle), np.sin(angle)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -(ux * ay - uy * ax) / (ux * dy - uy * dx)
    return np.clip(np.nan_to_num(t), 0.0, 1.0)


def _cross(p: _Floats, q: _Floats) -> npt.NDArray[np.float64]:
    return p[:, 0] * q[:, 1] - p[:, 1] * q[:, 0]


def _wedge_piece_length(seg: _Segments, nx: _Floats, ny: _Floats, h: _Floats) -> npt.NDArray[np.float64]:
    """Length of each segment inside the half-plane (nx, ny) . x <= h."""
    s0 = seg.ax * nx + seg.ay * ny - h
    s1 = seg.bx * nx + seg.by * ny - h
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.clip(np.nan_to_num(s0 / (s0 - s1)), 0.0, 1.0)  # where the piece crosses the line
    frac = np.where(s0 <= 0, np.where(s1 <= 0, 1.0, t), np.where(s1 <= 0, 1.0 - t, 0.0))
    return frac * np.hypot(seg.bx - seg.ax, seg.by - seg.ay)


def _wedge_piece_area(seg: _Segments, nx: _Floats, ny: _Floats, h: _Floats) -> npt.NDArray[np.float64]:
    """Signed area of triangle (O, a, b) inside the half-plane (nx, ny) . x <= h (O is inside it)."""
    s0 = seg.ax * nx + seg.ay * ny
    s1 = seg.bx * nx + seg.by * ny
    in0, in1 = s0 <= h, s1 <= h
    with np.errstate(divide="ignore", invalid="ignore"):
        f0 = np.where(in0, 1.0, h / s0)  # a, or where the ray O->a meets the line
        f1 = np.where(in1, 1.0, h / s1)
        t = np.clip(np.nan_to_num((h - s0) / (s1 - s0)), 0.0, 1.0)
    q0x, q0y, q1x, q1y = seg.ax * f0, seg.ay * f0, seg.bx * f1, seg.by * f1
    xx, xy = seg.ax + t * (seg.bx - seg.ax), seg.ay + t * (seg.by - seg.ay)  # where the piece crosses the line
    straight = q0x * q1y - q0y * q1x
    bent = (q0x * xy - q0y * xx) + (xx * q1y - xy * q1x)
    return np.where(in0 != in1, bent, straight) / 2.0
