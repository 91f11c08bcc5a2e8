"""geotower: geo-aware two-tower retrieval for places, from raw Yelp/OSM data to a served model.

The public Python API (:mod:`geotower.api`) is re-exported here and loaded on first use, so ``import geotower``
(and the CLI's start-up) stays cheap: ``geotower.Dataset``, ``geotower.train``, ``geotower.Run``,
``geotower.Report``, ``geotower.osm_features``, ``geotower.plot_map``.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"  # the one place the version lives (pyproject.toml reads it)

__all__ = ["Dataset", "Report", "Run", "__version__", "osm_features", "plot_map", "train"]


def __getattr__(name: str) -> Any:
    if name in __all__ and name != "__version__":
        from geotower import api  # the facade: the package root re-exports it (tests/test_architecture.py)

        return getattr(api, name)
    raise AttributeError(f"module 'geotower' has no attribute {name!r}")
