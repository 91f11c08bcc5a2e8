"""Canonical column names of the dataset folder and the OSM context feature table.

One place for names, so every stage checks its input against the same contract.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

# --- dataset folder -------------------------------------------------------------------------------
USER_ID = "user_id"
ITEM_ID = "item_id"
RATING = "rating"
TIMESTAMP = "timestamp"  # int64 epoch seconds after loading
LAT = "lat"
LON = "lon"
NAME = "name"
WEIGHT = "weight"  # confidence weight after loading (1.0 when no weight column is configured)
POSITIVE = "positive"  # bool after loading: centered rating > threshold, or always True without ratings

INTERACTIONS_STEM = "interactions"
ITEMS_STEM = "items"
USERS_STEM = "users"
DATASET_TOML = "dataset.toml"
TABLE_SUFFIXES = (".parquet", ".csv")


# --- OSM context features -------------------------------------------------------------------------
@dataclass(frozen=True)
class Layer:
    """One Geofabrik layer: its name, geometry kind and the shapefile stem it is read from."""

    name: str
    kind: str  # "point" | "line" | "polygon"
    stem: str  # e.g. gis_osm_roads_free_1

    @property
    def measure(self) -> str | None:
        """Second statistic after the count: 'len' for lines, 'area' for polygons, none for points."""
        return {"point": None, "line": "len", "polygon": "area"}[self.kind]


LAYERS: tuple[Layer, ...] = (
    Layer("pois", "point", "gis_osm_pois_free_1"),
    Layer("places", "point", "gis_osm_places_free_1"),
    Layer("traffic", "point", "gis_osm_traffic_free_1"),
    Layer("transport", "point", "gis_osm_transport_free_1"),
    Layer("roads", "line", "gis_osm_roads_free_1"),
    Layer("railways", "line", "gis_osm_railways_free_1"),
    Layer("waterways", "line", "gis_osm_waterways_free_1"),
    Layer("buildings", "polygon", "gis_osm_buildings_a_free_1"),
    Layer("landuse", "polygon", "gis_osm_landuse_a_free_1"),
    Layer("natural", "polygon", "gis_osm_natural_a_free_1"),
    Layer("water", "polygon", "gis_osm_water_a_free_1"),
)
LAYER_BY_NAME = {layer.name: layer for layer in LAYERS}
DEFAULT_RADII: tuple[int, ...] = (100, 200, 500)


def geo_feature_columns(
    radii: tuple[int, ...] = DEFAULT_RADII, layers: tuple[Layer, ...] = LAYERS
) -> list[str]:
    """Column names in the original table's order: per layer, per radius, count then len/area.

    >>> geo_feature_columns((100,), (LAYER_BY_NAME["roads"],))
    ['roads_100m_count', 'roads_100m_len']
    """
    names: list[str] = []
    for layer in layers:
        for r in radii:
            names.append(f"{layer.name}_{r}m_count")
            if layer.measure is not None:
                names.append(f"{layer.name}_{r}m_{layer.measure}")
    return names


# --- local planar coordinates ---------------------------------------------------------------------
KM_PER_DEG = 111.32  # km per degree of latitude, and of longitude at the equator (WGS84 equatorial circumference)


def local_xy_km(lat: npt.ArrayLike, lon: npt.ArrayLike, origin: tuple[float, float]) -> npt.NDArray[np.float64]:
    """Equirectangular (x, y) in km around ``origin`` = (lat0, lon0), shape (n, 2).

    The one local projection of the code base (geo encoders, geo-hard negatives, the simulator, search boxes): at
    city scale (tens of km) its error is below 0.5 %, and it needs no CRS. Metric buffers use UTM instead.
    """
    lat0, lon0 = origin
    x = (np.asarray(lon, dtype=np.float64) - lon0) * KM_PER_DEG * np.cos(np.radians(lat0))
    y = (np.asarray(lat, dtype=np.float64) - lat0) * KM_PER_DEG
    return np.stack([x, y], axis=-1)


def local_latlon(xy: npt.ArrayLike, origin: tuple[float, float]) -> tuple[npt.NDArray[np.float64], ...]:
    """Inverse of :func:`local_xy_km`: (lat, lon) in degrees of km offsets ``xy`` (n, 2) around ``origin``."""
    lat0, lon0 = origin
    xy = np.asarray(xy, dtype=np.float64)
    return lat0 + xy[..., 1] / KM_PER_DEG, lon0 + xy[..., 0] / (KM_PER_DEG * np.cos(np.radians(lat0)))
