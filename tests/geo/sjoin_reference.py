"""The straightforward reference: geopandas buffers + ``sjoin(predicate="intersects")`` per layer and radius.

Deliberately simple (no chunking, no shortcuts) so it can judge geotower's vectorised path; used by the tests and by
``benchmarks/bench_osm.py``. Reads every layer whole with geopandas.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from geotower import schema as S
from geotower.schema import Layer


def reference_features(items: pd.DataFrame, layer_frames: dict[str, gpd.GeoDataFrame], radii: tuple[int, ...],
                       layers: tuple[Layer, ...], mode: str) -> pd.DataFrame:
    """Features by sjoin: ``layer_frames`` maps layer name -> GeoDataFrame in EPSG:4326 (missing = zeros)."""
    pts = gpd.GeoSeries(gpd.points_from_xy(items[S.LON], items[S.LAT]), crs="EPSG:4326")
    crs = pts.estimate_utm_crs()
    pts = pts.to_crs(crs)
    out = pd.DataFrame({S.ITEM_ID: items[S.ITEM_ID].astype(str).to_numpy()})
    for layer in layers:
        feats = layer_frames.get(layer.name)
        feats = None if feats is None else feats[["geometry"]].to_crs(crs).reset_index(drop=True)
        for r in radii:
            count, measure = _one(pts, feats, r, layer, mode)
            out[f"{layer.name}_{r}m_count"] = count
            if layer.measure is not None:
                out[f"{layer.name}_{r}m_{layer.measure}"] = measure
    return out


def _one(pts: gpd.GeoSeries, feats: gpd.GeoDataFrame | None, r: int, layer: Layer,
         mode: str) -> tuple[np.ndarray, np.ndarray]:
    n = len(pts)
    if feats is None or feats.empty:
        return np.zeros(n), np.zeros(n)
    buffers = gpd.GeoDataFrame(geometry=pts.buffer(r), crs=pts.crs)
    joined = gpd.sjoin(buffers, feats, predicate="intersects", how="inner")
    count = joined.groupby(level=0).size().reindex(range(n), fill_value=0).to_numpy(dtype=float)
    if layer.measure is None:
        return count, np.zeros(n)
    geoms = feats.geometry.iloc[joined["index_right"].to_numpy()].reset_index(drop=True)
    if mode == "clipped":
        geoms = geoms.intersection(buffers.geometry.loc[joined.index].reset_index(drop=True))
    values = geoms.length if layer.kind == "line" else geoms.area
    measure = pd.Series(values.to_numpy(), index=joined.index).groupby(level=0).sum()
    return count, measure.reindex(range(n), fill_value=0.0).to_numpy(dtype=float)


def read_layer_frames(source: str | Path, layers: tuple[Layer, ...]) -> dict[str, gpd.GeoDataFrame]:
    """Read each layer of a Geofabrik zip or folder whole with geopandas (the reference's way)."""
    source = Path(source)
    frames = {}
    for layer in layers:
        if source.suffix == ".zip":
            path = f"/vsizip/{source.resolve()}/{layer.stem}.shp"
        else:
            path = str(source / f"{layer.stem}.shp")
        try:
            frames[layer.name] = gpd.read_file(path)
        except Exception:  # missing layer: the reference treats it as empty
            continue
    return frames
