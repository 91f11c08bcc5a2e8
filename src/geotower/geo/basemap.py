"""The map page's background: the surroundings of the catalogue drawn from the same OSM extract as the features.

Roads, railways, waterways, water, land use (parks, forest, grass... and built-up areas) and buildings are read
with :class:`~geotower.geo.osm.OsmSource` (the reader the features use, so the map shows exactly what the model
saw), clipped to the catalogue's bounding box plus a margin, simplified to about a metre and written as one small
GeoJSON document per layer in ``RUN/surroundings.json``. The service serves that file; the page draws it with
Leaflet's vector layers, so no tile server and no network are needed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from geotower import artifacts
from geotower.errors import DataError
from geotower.geo.osm import OsmSource
from geotower.schema import LAYER_BY_NAME

SURROUNDINGS_JSON = "surroundings.json"
# drawn bottom to top; buildings last so they sit on land use
MAP_LAYERS = ("landuse", "water", "waterways", "railways", "roads", "buildings")
MARGIN_DEG = 0.004  # about 400 m of context around the outermost place
TOLERANCE_DEG = 1e-5  # simplification: about 1 m
MAX_FEATURES = 60_000  # per layer; beyond this the smallest polygons / shortest lines are dropped


def catalogue_box(lat: np.ndarray, lon: np.ndarray, margin: float = MARGIN_DEG) -> tuple[float, float, float, float]:
    """(min_lon, min_lat, max_lon, max_lat) of the finite coordinates, widened by ``margin`` degrees."""
    ok = np.isfinite(lat) & np.isfinite(lon)
    if not ok.any():
        raise DataError("no place has coordinates, so there is nothing to draw surroundings around")
    return (float(lon[ok].min()) - margin, float(lat[ok].min()) - margin,
            float(lon[ok].max()) + margin, float(lat[ok].max()) + margin)


def _layer_features(geoms: np.ndarray, box: shapely.Geometry, kind: str) -> np.ndarray:
    """Clip, simplify and thin one layer's geometries; returns GeoJSON geometry strings."""
    geoms = geoms[~shapely.is_empty(geoms) & shapely.intersects(geoms, box)]
    if len(geoms) == 0:
        return np.zeros(0, dtype=object)
    geoms = shapely.make_valid(geoms) if kind == "polygon" else geoms
    geoms = shapely.simplify(shapely.intersection(geoms, box), TOLERANCE_DEG, preserve_topology=kind == "polygon")
    geoms = geoms[~shapely.is_empty(geoms)]
    if len(geoms) > MAX_FEATURES:
        size = shapely.area(geoms) if kind == "polygon" else shapely.length(geoms)
        geoms = geoms[np.argsort(-size, kind="stable")[:MAX_FEATURES]]
    geoms = shapely.set_precision(geoms, 1e-6)  # 6 decimals: ~0.1 m, keeps the file small
    out: np.ndarray = shapely.to_geojson(geoms[~shapely.is_empty(geoms)])
    return out


def build_surroundings(source: str | Path, lat: np.ndarray, lon: np.ndarray) -> dict[str, Any]:
    """``{"bbox": [...], "source": name, "layers": {layer: FeatureCollection}}`` around the given places."""
    box_t = catalogue_box(np.asarray(lat, float), np.asarray(lon, float))
    box = shapely.box(*box_t)
    src = OsmSource(source)
    layers = tuple(LAYER_BY_NAME[n] for n in MAP_LAYERS)
    present = tuple(la for la in layers if la not in src.missing_layers(layers))
    parts: dict[str, list[np.ndarray]] = {la.name: [] for la in present}
    for layer, geoms in src.chunks(present, bbox=box_t):
        parts[layer.name].append(_layer_features(geoms, box, layer.kind))
    out: dict[str, Any] = {}
    for name in MAP_LAYERS:
        chunks = [c for c in parts.get(name, []) if len(c)]
        texts = np.concatenate(chunks) if chunks else np.zeros(0, dtype=object)
        out[name] = {"type": "FeatureCollection",
                     "features": [{"type": "Feature", "properties": {}, "geometry": json.loads(t)} for t in texts]}
    return {"bbox": list(box_t), "source": Path(source).name,
            "attribution": "Map data (c) OpenStreetMap contributors, ODbL 1.0", "layers": out}


def write_surroundings(run_dir: str | Path, source: str | Path, lat: np.ndarray, lon: np.ndarray) -> Path:
    """Build the layers and write ``RUN/surroundings.json`` atomically."""
    doc = build_surroundings(source, lat, lon)
    text = json.dumps(doc, separators=(",", ":"))
    return artifacts.write_text(Path(run_dir) / SURROUNDINGS_JSON, text)


def write_run_surroundings(run_dir: str | Path, source: str | Path) -> Path:
    """Surroundings of every place of a run (its ``items.parquet``)."""
    items = artifacts.read_table(Path(run_dir) / "items.parquet")
    if "lat" not in items.columns or "lon" not in items.columns:
        raise DataError("the run's places have no lat/lon, so there is nothing to draw surroundings around",
                        path=Path(run_dir) / "items.parquet")
    return write_surroundings(run_dir, source, items["lat"].to_numpy(float), items["lon"].to_numpy(float))
