"""What surrounds each place: counts and lengths/areas of OSM features within 100/200/500 m, vectorised.

For each layer chunk one STRtree query (items' points, built once) returns every (feature, item) pair within the
largest radius; smaller radii and exact buffer tests are decided on those pairs with numpy, and sums are
``np.bincount``. Buffers are geopandas' default 64-gons (``quad_segs=16``) around each item in a UTM CRS estimated
from the items, so counts equal a plain ``geopandas.sjoin(buffers, features, predicate="intersects")``.

Two measures: ``whole`` sums the full length/area of every intersecting feature (the original table's definition);
``clipped`` (default) sums only the part inside the buffer, so a 20 km river touching a 100 m buffer adds at most
about 200 m. Clipping needs no GEOS overlay (see :mod:`geotower.geo.clip`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
from tqdm.auto import tqdm

from geotower import schema as S
from geotower.config import FeaturesConfig
from geotower.errors import ConfigError, DataError, GeotowerWarning
from geotower.geo.accumulator import FeatureAccumulator
from geotower.geo.layers import select_layers
from geotower.geo.osm import Bounds, OsmSource
from geotower.schema import Layer


def utm_crs(lon: npt.NDArray[np.float64], lat: npt.NDArray[np.float64]) -> str:
    """UTM CRS (as "EPSG:xxxxx") of the items' bounding-box centre, as ``GeoSeries.estimate_utm_crs`` picks it."""
    from pyproj.aoi import AreaOfInterest
    from pyproj.database import query_utm_crs_info

    x, y = (float(lon.min()) + float(lon.max())) / 2, (float(lat.min()) + float(lat.max())) / 2
    found = query_utm_crs_info(datum_name="WGS 84", area_of_interest=AreaOfInterest(x, y, x, y))
    if not found:
        raise DataError(f"no UTM zone found for the items' centre ({x:.4f}, {y:.4f})")
    return f"EPSG:{found[0].code}"


def utm_zones(lon: npt.NDArray[np.float64], lat: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """EPSG code of each place's own WGS84 UTM zone (326zz north, 327zz south), with the Norway/Svalbard cuts.

    Per place, so a catalogue spread over a continent gets every buffer in a zone where the scale error is below
    0.04 % (a single zone for all of the US distorts distances far from its centre by 5-10 %).
    """
    zone = np.clip(np.floor((np.asarray(lon) + 180.0) / 6.0).astype(np.int64) + 1, 1, 60)
    lat = np.asarray(lat)
    zone = np.where((lat >= 56) & (lat < 64) & (lon >= 3) & (lon < 12), 32, zone)  # south-west Norway
    svalbard = (lat >= 72) & (lat < 84)
    for lo, hi, z in ((0, 9, 31), (9, 21, 33), (21, 33, 35), (33, 42, 37)):
        zone = np.where(svalbard & (lon >= lo) & (lon < hi), z, zone)
    return np.where(lat >= 0, 32600, 32700) + zone


def to_metric(geoms: np.ndarray, crs: str) -> np.ndarray:
    """Project WGS84 geometries (lon/lat) to ``crs``, all coordinates in one vectorised pyproj call."""
    from pyproj import Transformer

    tr = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    out: np.ndarray = shapely.transform(geoms, lambda x, y: tr.transform(x, y), interleaved=False)
    return out


def clean_geometries(geoms: np.ndarray, kind: str) -> tuple[np.ndarray, int, int]:
    """Drop missing/empty geometries and repair invalid polygons (polygonal parts kept).

    Returns:
        (kept geometries, number skipped, number repaired).
    """
    keep = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    geoms = geoms[keep]
    repaired = 0
    if kind == "polygon" and len(geoms):
        bad = ~shapely.is_valid(geoms)
        repaired = int(bad.sum())
        if repaired:
            geoms = geoms.copy()
            geoms[bad] = shapely.make_valid(geoms[bad], method="structure", keep_collapsed=False)
            nonempty = ~shapely.is_empty(geoms)
            keep_after = nonempty & (shapely.area(geoms) > 0)
            geoms = geoms[keep_after]
            return geoms, int((~keep).sum() + (~keep_after).sum()), repaired
    return geoms, int((~keep).sum()), repaired


def validate_items(items: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check ``item_id, lat, lon``; returns (ids as str, lon, lat).

    Raises:
        DataError: a missing column, duplicated ids, or items without valid coordinates (named, with their count).
    """
    for col in (S.ITEM_ID, S.LAT, S.LON):
        if col not in items.columns:
            raise DataError(f"items need columns item_id, lat, lon; {col!r} is missing", column=col)
    ids = items[S.ITEM_ID].astype(str).to_numpy()
    dup = pd.Index(ids).duplicated()
    if dup.any():
        raise DataError(f"{int(dup.sum())} duplicated item ids, e.g. {list(ids[dup][:5])}", column=S.ITEM_ID)
    lat = pd.to_numeric(items[S.LAT], errors="coerce").to_numpy(dtype=float)
    lon = pd.to_numeric(items[S.LON], errors="coerce").to_numpy(dtype=float)
    bad = ~(np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180))
    if bad.any():
        raise DataError(f"{int(bad.sum())} items without valid coordinates: {', '.join(ids[bad][:10])}"
                        f"{' ...' if bad.sum() > 10 else ''}", row=int(np.flatnonzero(bad)[0]), column=S.LAT)
    if not len(ids):
        raise DataError("no items to compute features for")
    return ids, lon, lat


def _search_box(lon: np.ndarray, lat: np.ndarray, radius_m: float) -> Bounds:
    """Lon/lat box around the items, padded by the largest radius (+10%) so no needed feature is filtered out."""
    pad_lat = 1.1 * radius_m / (S.KM_PER_DEG * 1000)
    max_lat = min(float(np.abs(lat).max()) + pad_lat, 89.0)
    pad_lon = 1.1 * radius_m / (S.KM_PER_DEG * 1000 * math.cos(math.radians(max_lat)))
    return (float(lon.min()) - pad_lon, float(lat.min()) - pad_lat, float(lon.max()) + pad_lon,
            float(lat.max()) + pad_lat)


def _warn_outside(lon: np.ndarray, lat: np.ndarray, extent: Bounds | None, source: Path) -> None:
    if extent is None:
        return
    outside = (lon < extent[0]) | (lon > extent[2]) | (lat < extent[1]) | (lat > extent[3])
    if outside.any():
        warnings.warn(f"{int(outside.sum())} of {len(lon)} items lie outside the bounds of {source}; "
                      "their features only count what the extract holds", GeotowerWarning, stacklevel=3)


def _check_missing(src: OsmSource, layers: tuple[Layer, ...], strict: bool) -> tuple[Layer, ...]:
    """Layers the source lacks: error with ``strict``, else one warning each; returns the layers present."""
    missing = src.missing_layers(layers)
    if missing and len(missing) == len(layers) and src.kind != "pbf":
        raise DataError(f"no Geofabrik layer files (gis_osm_*_free_1.shp/.gpkg) found; looked for "
                        f"{', '.join(la.stem for la in missing)}", path=src.path)
    for layer in missing:
        message = f"layer {layer.name!r} ({layer.stem}) is missing from the OSM source; its columns are 0"
        if strict:
            raise DataError(message, path=src.path)
        warnings.warn(f"{src.path}: {message}", GeotowerWarning, stacklevel=3)
    return tuple(la for la in layers if la not in missing)


def _check_radii(radii: tuple[int, ...]) -> None:
    if len(set(radii)) != len(radii) or not radii:
        raise ConfigError(f"features.radii: need distinct radii, got {list(radii)}")


def compute_osm_features(items: pd.DataFrame, source: str | Path | Sequence[str | Path], cfg: FeaturesConfig,
                         strict: bool = False) -> pd.DataFrame:
    """OSM context features for each item, streamed layer chunk by layer chunk from one or several extracts.

    Each place is measured in its own UTM zone: places are grouped by zone, and every group gets its own points,
    search box and projection of the features near it, so a buffer is r meters wherever the place is. With
    several extracts (one per region), each place reads the first extract whose extent holds it (the first one
    if none does), and a chunk is only projected for the zone groups whose search boxes it meets.

    Args:
        items: ``item_id, lat, lon`` (WGS84 degrees); other columns are ignored.
        source: Geofabrik ``*-free.shp.zip``, a folder of ``gis_osm_*`` shapefiles/GeoPackages, or an ``.osm.pbf``;
            or a list of them.
        cfg: radii, mode ("clipped" | "whole") and layers (empty = all 11).
        strict: a layer missing from the source is an error instead of a warning.

    Returns:
        ``item_id`` + ``geo_feature_columns(cfg.radii, layers)`` (float64), rows in the items' order.

    Raises:
        DataError: bad items, unreadable source, or (strict) a missing layer.
    """
    _check_radii(cfg.radii)
    ids, lon, lat = validate_items(items)
    layers = select_layers(cfg.layers)
    sources = [OsmSource(p) for p in ([source] if isinstance(source, (str, Path)) else source)]
    if not sources:
        raise DataError("no OSM source given")
    zone = utm_zones(lon, lat)
    owner = _assign_sources(sources, lon, lat)
    parts = []
    for k, src in enumerate(sources):
        mine = np.flatnonzero(owner == k)
        if not len(mine):
            continue
        present = _check_missing(src, layers, strict)
        if len(sources) == 1:
            _warn_outside(lon, lat, src.extent(), src.path)
        groups = [_ZoneGroup(mine[zone[mine] == z], int(z), lon, lat, cfg) for z in np.unique(zone[mine])]
        _stream(src, present, groups)
        parts += [(g.rows, g.acc.frame(ids[g.rows], layers)) for g in groups]
    rows = np.concatenate([r for r, _ in parts])
    out = pd.concat([f for _, f in parts], ignore_index=True)
    return out.iloc[np.argsort(rows, kind="stable")].reset_index(drop=True)


class _ZoneGroup:
    """The places of one extract in one UTM zone: their accumulator in that zone's CRS and their search box."""

    def __init__(self, rows: np.ndarray, epsg: int, lon: np.ndarray, lat: np.ndarray, cfg: FeaturesConfig) -> None:
        self.rows, self.crs = rows, f"EPSG:{epsg}"
        self.box = _search_box(lon[rows], lat[rows], max(cfg.radii))
        self.acc = FeatureAccumulator(to_metric(shapely.points(lon[rows], lat[rows]), self.crs), cfg.radii, cfg.mode)


def _assign_sources(sources: list[OsmSource], lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Index of the extract each place reads: the first whose extent holds it, else the first (warned)."""
    owner = np.full(len(lon), -1)
    if len(sources) == 1:
        return np.zeros(len(lon), dtype=np.int64)
    for k, src in enumerate(sources):
        box = src.extent()
        if box is None:
            continue
        inside = (owner < 0) & (lon >= box[0]) & (lon <= box[2]) & (lat >= box[1]) & (lat <= box[3])
        owner[inside] = k
    if (owner < 0).any():
        warnings.warn(f"{int((owner < 0).sum())} of {len(lon)} items lie outside every OSM extract given; they "
                      f"read {sources[0].path}", GeotowerWarning, stacklevel=3)
    return np.where(owner < 0, 0, owner)


def _stream(src: OsmSource, layers: tuple[Layer, ...], groups: list[_ZoneGroup]) -> None:
    """One pass over ``src``: each chunk goes, projected, to every zone group whose search box it meets."""
    boxes = np.array([g.box for g in groups])
    union: Bounds = (float(boxes[:, 0].min()), float(boxes[:, 1].min()), float(boxes[:, 2].max()),
                     float(boxes[:, 3].max()))
    tally: dict[str, list[int]] = {}
    chunks = src.chunks(layers, bbox=union)
    for layer, geoms in tqdm(chunks, desc="OSM layer chunks", unit="chunk", disable=None, leave=False):
        bounds = shapely.bounds(geoms)
        for group in groups:
            b = group.box
            near = ~((bounds[:, 0] > b[2]) | (bounds[:, 2] < b[0]) | (bounds[:, 1] > b[3]) | (bounds[:, 3] < b[1]))
            mine, n_skipped, n_repaired = clean_geometries(to_metric(geoms[near], group.crs), layer.kind)
            group.acc.add(layer, mine)
            counts = tally.setdefault(layer.name, [0, 0])
            counts[0] += n_skipped
            counts[1] += n_repaired
    _warn_geometry_problems(tally, src)


def _warn_geometry_problems(tally: dict[str, list[int]], src: OsmSource) -> None:
    for name, (n_skipped, n_repaired) in tally.items():
        n_unbuilt = src.stats.unbuildable.get(name, 0)
        if n_skipped or n_repaired or n_unbuilt:
            warnings.warn(f"{src.path}: layer {name!r}: skipped {n_skipped + n_unbuilt} empty/unbuildable "
                          f"geometries, repaired {n_repaired} invalid polygons", GeotowerWarning, stacklevel=3)

