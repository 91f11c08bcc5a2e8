"""geotower: geo-aware two-tower retrieval for places, from raw Yelp/OSM data to a served model."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
