"""Geo (layer L1): what surrounds each place, counted from OpenStreetMap layers (no torch).

The public names below load their module on first use (:mod:`geotower._lazy`), so importing the package is cheap.
"""

from geotower._lazy import lazy_exports

_HOMES: dict[str, tuple[str, ...]] = {
    "context": ("compute_osm_features", "utm_zones"),
    "osm": ("OsmSource",),
    "layers": ("select_layers",),
    "places": ("bundled_helsinki_pbf", "places_from_pbf"),
    "basemap": ("build_surroundings", "write_run_surroundings"),
    "clip": (),
}

__all__ = [
    "OsmSource", "basemap", "build_surroundings", "bundled_helsinki_pbf", "clip", "compute_osm_features", "context",
    "layers", "osm", "places", "places_from_pbf", "select_layers", "utm_zones", "write_run_surroundings",
]

__getattr__ = lazy_exports(__name__, _HOMES)
