"""Length/area of features clipped to the items' 64-gon buffers, for many (feature, item) pairs at once.

GEOS overlay (``shapely.intersection``) costs 20-35 us per pair, which dominated the clipped features. The buffer
is a convex regular polygon, so clipping needs no general overlay: segments are clipped with Cyrus-Beck (one
(segments x 64) array operation) and polygon rings with Sutherland-Hodgman over ragged numpy arrays (64 passes,
one per edge; the area of its output is exact for a convex clip window even where the clipped ring degenerates).
Holes count negatively, multi-part features sum their parts. Coordinates are taken relative to each item so
rounding stays at the millimetre scale of UTM meters.
"""

from __future__ import annotations

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
            self.coords, ring_of = coords[~last], ring_of[~last]  # drop each ring's closing vertex
            self.v_count = np.bincount(ring_of, minlength=len(rings))
            self.v_start = np.cumsum(self.v_count) - self.v_count
        else:
            coords, part_of = shapely.get_coordinates(parts, return_index=True)
            same = part_of[1:] == part_of[:-1]
            self.a, self.b = coords[:-1][same], coords[1:][same]  # segment ends
            owner = part_feat[part_of[:-1][same]]
        self.count = np.bincount(owner, minlength=len(geoms))  # segments or rings per feature
        self.start = np.cumsum(self.count) - self.count

    def clipped(self, feat: _Ints, centers: _Floats, r: float) -> npt.NDArray[np.float64]:
        """Length (lines) or area (polygons) of ``feat[j]`` inside the r-buffer around ``centers[j]`` (m, 2)."""
        pair, idx = _expand(self.start[feat], self.count[feat])
        if self.kind == "line":
            values = _segment_lengths(self.a[idx] - centers[pair], self.b[idx] - centers[pair], r)
            return _bin_sum(pair, values, len(feat))
        fan, touching = _ring_areas(self.coords, self.v_start[idx], self.v_count[idx], centers[pair], r)
        inside = shapely.contains_xy(self.geoms[feat], centers[:, 0], centers[:, 1])
        values = _bin_sum(pair, self.orient[idx] * fan, len(feat))
        values = values + np.where(inside, polygon_area(r), 0.0)
        redo = np.unique(pair[touching])  # the item lies on the feature's boundary: sweep every edge instead
        if len(redo):
            pair2, idx2 = _expand(self.start[feat[redo]], self.count[feat[redo]])
            full = _ring_areas_full(self.coords, self.v_start[idx2], self.v_count[idx2], centers[redo][pair2], r)
            values[redo] = _bin_sum(pair2, self.sign[idx2] * full, len(redo))
        return values


def _segment_lengths(a: _Floats, b: _Floats, r: float) -> npt.NDArray[np.float64]:
    """Length of each segment a->b (m, 2), relative to the centre, inside the r-buffer.

    Segments with both ends inside the inscribed disc are whole; segments farther than r are out; only the rest,
    those crossing the thin ring between the two, go through Cyrus-Beck.
    """
    length = _norm(b - a)
    inner = r * _OFFSETS.min() * (1.0 - 1e-9)
    whole = (_norm(a) <= inner) & (_norm(b) <= inner)
    near = ~whole & (_centre_distance(a, b) <= r)
    out = np.where(whole, length, 0.0)
    if near.any():
        out[near] = _wedge_sweep(a[near], b[near], r, "len")
    return out


def _centre_distance(a: _Floats, b: _Floats) -> npt.NDArray[np.float64]:
    """Distance from the origin to each segment a->b."""
    d = b - a
    dd = np.einsum("ij,ij->i", d, d)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.clip(np.where(dd > 0, -np.einsum("ij,ij->i", a, d) / dd, 0.0), 0.0, 1.0)
    return _norm(a + t[:, None] * d)


def _cyrus_beck(a: _Floats, b: _Floats, r: float) -> npt.NDArray[np.float64]:
    """Cyrus-Beck clipping of segments against the 64-gon, in blocks of (segments x 64) arrays."""
    out = np.empty(len(a))
    normals, offsets = _NORMALS, _OFFSETS * r
    for lo in range(0, len(a), _SEG_BLOCK):
        sa, sb = a[lo:lo + _SEG_BLOCK], b[lo:lo + _SEG_BLOCK]
        d = sb - sa
        num = offsets - sa @ normals.T  # (m, 64): >= 0 where the start is inside edge k's half-plane
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
                     r: float) -> npt.NDArray[np.float64]:
    """Area of each ring inside the r-buffer by sweeping every edge's fan triangle (any position of the centre)."""
    job, a, b = _ring_edges(coords, v_start, v_count, centers)
    area = np.zeros(len(job))
    for lo in range(0, len(job), _SEG_BLOCK):
        area[lo:lo + _SEG_BLOCK] = _fan_areas(a[lo:lo + _SEG_BLOCK], b[lo:lo + _SEG_BLOCK], r)
    return np.abs(_bin_sum(job, area, len(v_count)))


def _ring_areas(coords: _Floats, v_start: _Ints, v_count: _Ints, centers: _Floats,
                r: float) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Signed fan area of each ring (vertices relative to its centre) inside the r-buffer, minus its 64-gon sweep.

    A ring's area is the sum over its edges (a, b) of the signed triangle (O, a, b); intersected with the buffer,
    each triangle is cut at the 64-gon's vertex rays into pieces that lie in one wedge, where the buffer is just
    one half-plane. An edge farther than r from O cuts nothing: its clipped triangle is the 64-gon's sector between
    the rays to a and b, and those sectors sum, around a closed ring, to the whole 64-gon if the ring winds around
    O and to nothing otherwise. So only edges within r are swept: this returns the sum over them of (clipped
    triangle - sector), and the caller adds the 64-gon's area where the feature contains O. That identity needs O
    off the ring: rings with an edge through O are flagged (second value) for :func:`_ring_areas_full`.
    """
    job, a, b = _ring_edges(coords, v_start, v_count, centers)
    area = np.zeros(len(job))
    touching = np.zeros(len(v_count), dtype=bool)
    for lo in range(0, len(job), _SEG_BLOCK):
        sa, sb = a[lo:lo + _SEG_BLOCK], b[lo:lo + _SEG_BLOCK]
        near = np.flatnonzero(_centre_distance(sa, sb) <= r)
        na, nb = sa[near], sb[near]
        area[lo + near] = _fan_areas(na, nb, r) - _sector_areas(na, nb, r)
        through = (np.abs(_cross(na, nb)) <= 1e-9 * (_norm(na) * _norm(nb) + 1e-12)) & \
            (np.einsum("ij,ij->i", na, nb) <= 0)
        touching[job[lo + near[through]]] = True
    return _bin_sum(job, area, len(v_count)), touching


_STEP = 2 * np.pi / (4 * QUAD_SEGS)  # angle between the 64-gon's vertices (one at angle 0)


def _fan_areas(a: _Floats, b: _Floats, r: float) -> npt.NDArray[np.float64]:
    """Signed area of triangle (O, a, b) inside the 64-gon of circumradius r around O, per edge (m, 2).

    Edges with both ends inside the inscribed disc keep their whole triangle; only the others are swept.
    """
    inner = r * _OFFSETS.min() * (1.0 - 1e-9)
    whole = (_norm(a) <= inner) & (_norm(b) <= inner)
    out = np.where(whole, _cross(a, b) / 2.0, 0.0)
    if not whole.all():
        out[~whole] = _wedge_sweep(a[~whole], b[~whole], r, "area")
    return out


def _wedge_sweep(a: _Floats, b: _Floats, r: float, measure: str) -> npt.NDArray[np.float64]:
    """Cut each segment a->b (m, 2) at the 64-gon's vertex rays; inside one wedge the buffer is one half-plane.

    ``measure`` "area": signed area of triangle (O, a, b) inside the buffer; "len": length of a->b inside it.
    Segments collinear with the centre have no fan area and go through Cyrus-Beck for their length.
    """
    d = b - a
    theta_a = np.arctan2(a[:, 1], a[:, 0])
    span = np.mod(np.arctan2(b[:, 1], b[:, 0]) - theta_a + np.pi, 2 * np.pi) - np.pi  # signed sweep, (-pi, pi]
    k_a = np.floor(theta_a / _STEP)
    n_pieces = (np.abs(np.floor((theta_a + span) / _STEP) - k_a) + 1).astype(np.int64)
    degenerate = np.abs(_cross(a, b)) <= 1e-12 * (_norm(a) * _norm(b) + 1e-300)
    n_pieces[degenerate] = 0
    edge, piece = _expand(np.zeros(len(a), dtype=np.int64), n_pieces)
    step = np.sign(span[edge])
    k = k_a[edge] + step * piece  # wedge of this piece (unwrapped)
    lo_angle, hi_angle = k * _STEP, (k + 1) * _STEP
    start = np.where(step >= 0, np.maximum(theta_a[edge], lo_angle), np.minimum(theta_a[edge], hi_angle))
    end_angle = theta_a[edge] + span[edge]
    stop = np.where(step >= 0, np.minimum(end_angle, hi_angle), np.maximum(end_angle, lo_angle))
    t0 = np.where(piece == 0, 0.0, _ray_t(a[edge], d[edge], start))
    t1 = np.where(piece == n_pieces[edge] - 1, 1.0, _ray_t(a[edge], d[edge], stop))
    p0 = a[edge] + t0[:, None] * d[edge]
    p1 = a[edge] + t1[:, None] * d[edge]
    mid = (k + 0.5) * _STEP
    normal = np.column_stack([np.cos(mid), np.sin(mid)])
    h = r * np.cos(_STEP / 2)
    piece_fn = _wedge_piece_area if measure == "area" else _wedge_piece_length
    out = _bin_sum(edge, piece_fn(p0, p1, normal, h), len(a))
    if measure == "len" and degenerate.any():
        out[degenerate] = _cyrus_beck(a[degenerate], b[degenerate], r)
    return out


def polygon_area(r: float) -> float:
    """Area of the buffer: the regular 64-gon of circumradius r (a vertex at angle 0, as in the wedge sweep)."""
    return float(4 * QUAD_SEGS * (r * np.cos(_STEP / 2)) ** 2 * np.tan(_STEP / 2))


def _sector_areas(a: _Floats, b: _Floats, r: float) -> npt.NDArray[np.float64]:
    """Signed area of the 64-gon between the rays O->a and O->b (the short way round), per edge (m, 2)."""
    theta_a = np.arctan2(a[:, 1], a[:, 0])
    span = np.mod(np.arctan2(b[:, 1], b[:, 0]) - theta_a + np.pi, 2 * np.pi) - np.pi
    return _sweep_area(theta_a + span, r) - _sweep_area(theta_a, r)


def _sweep_area(theta: _Floats, r: float) -> npt.NDArray[np.float64]:
    """Area of the 64-gon swept counter-clockwise from angle 0 to ``theta`` (any real angle, unwrapped)."""
    k = np.floor(theta / _STEP)
    h2 = float((r * np.cos(_STEP / 2)) ** 2)
    half = float(np.tan(_STEP / 2))
    return k * h2 * half + h2 / 2 * (np.tan(theta - (k + 0.5) * _STEP) + half)


def _ray_t(a: _Floats, d: _Floats, angle: _Floats) -> npt.NDArray[np.float64]:
    """Parameter t where segment a + t d meets the ray from O at ``angle``."""
    ux, uy = np.cos(angle), np.sin(angle)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -(ux * a[:, 1] - uy * a[:, 0]) / (ux * d[:, 1] - uy * d[:, 0])
    return np.clip(np.nan_to_num(t), 0.0, 1.0)


def _cross(p: _Floats, q: _Floats) -> npt.NDArray[np.float64]:
    return p[:, 0] * q[:, 1] - p[:, 1] * q[:, 0]


def _wedge_piece_length(p0: _Floats, p1: _Floats, normal: _Floats, h: float) -> npt.NDArray[np.float64]:
    """Length of segment p0->p1 inside the half-plane normal . x <= h."""
    s0 = np.einsum("ij,ij->i", p0, normal) - h
    s1 = np.einsum("ij,ij->i", p1, normal) - h
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.clip(np.nan_to_num(s0 / (s0 - s1)), 0.0, 1.0)  # where the piece crosses the line
    frac = np.where(s0 <= 0, np.where(s1 <= 0, 1.0, t), np.where(s1 <= 0, 1.0 - t, 0.0))
    return frac * _norm(p1 - p0)


def _wedge_piece_area(p0: _Floats, p1: _Floats, normal: _Floats, h: float) -> npt.NDArray[np.float64]:
    """Signed area of triangle (O, p0, p1) inside the half-plane normal . x <= h (O is inside it)."""
    s0 = np.einsum("ij,ij->i", p0, normal)
    s1 = np.einsum("ij,ij->i", p1, normal)
    in0, in1 = s0 <= h, s1 <= h
    with np.errstate(divide="ignore", invalid="ignore"):
        q0 = p0 * np.where(in0, 1.0, h / s0)[:, None]  # p0, or where the ray O->p0 meets the line
        q1 = p1 * np.where(in1, 1.0, h / s1)[:, None]
        t = np.clip(np.nan_to_num((h - s0) / (s1 - s0)), 0.0, 1.0)
    x = p0 + t[:, None] * (p1 - p0)  # where the piece crosses the line (used only when it does)
    crossing = in0 != in1
    straight = _cross(q0, q1)
    bent = _cross(q0, x) + _cross(x, q1)
    return np.where(crossing, bent, straight) / 2.0
