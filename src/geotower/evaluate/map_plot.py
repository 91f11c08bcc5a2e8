"""Static maps of recommendations: what people look at to judge the answers.

:func:`plot_recommendations_map` writes one user's PNG; :func:`plot_map` draws on a matplotlib axis for notebooks
(``geotower.plot_map``, ``Run.plot``). No tiles are fetched (there is no network at run time); the geography comes
from the places themselves and, when given, OSM geometries (roads, or the GeoJSON layers of
:mod:`geotower.geo.basemap`) drawn underneath.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from geotower import artifacts
from geotower import schema as S


def plot_recommendations_map(
    items: pd.DataFrame,
    seen_ids: Sequence[str],
    recommended: pd.DataFrame,
    path: str | Path,
    title: str,
    background: Sequence[np.ndarray] = (),
    home: tuple[float, float] | None = None,
) -> Path:
    """Write a PNG map: every place in grey, the user's past places in blue, recommendations ranked in red.

    Args:
        items: all places with ``item_id, lat, lon``.
        seen_ids: item ids the user interacted with in training.
        recommended: ``item_id, name, lat, lon, score`` in rank order.
        path: output PNG (written atomically).
        title: figure title.
        background: line coordinate arrays ``(n, 2)`` as (lon, lat), e.g. roads, drawn thin underneath.
        home: the user's (lat, lon) when known (simulated data), drawn as a house marker.
    """
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure  # no pyplot: leaves the caller's backend (a notebook's) alone

    fig = Figure(figsize=(8, 8), dpi=110)
    ax = fig.subplots()
    if len(background):
        ax.add_collection(LineCollection(list(background), colors="#d0d0d0", linewidths=0.5, zorder=0))
    ax.scatter(items["lon"], items["lat"], s=6, c="#9a9a9a", label="places", zorder=1)
    seen = items[items["item_id"].isin(set(seen_ids))]
    ax.scatter(seen["lon"], seen["lat"], s=30, c="#1f77b4", label="visited (train)", zorder=2)
    ax.scatter(recommended["lon"], recommended["lat"], s=90, c="#d62728", marker="*", label="recommended",
               zorder=3)
    for rank, row in enumerate(recommended.itertuples(index=False), start=1):  # K labels, not a hot path
        ax.annotate(f"{rank}. {row.name}", (row.lon, row.lat), fontsize=7, xytext=(4, 3),
                    textcoords="offset points", zorder=4)
    if home is not None:
        ax.scatter([home[1]], [home[0]], s=120, c="#2ca02c", marker="^", label="home (simulated)", zorder=3)
    lat0 = float(np.nanmean(items["lat"]))
    ax.set_aspect(1.0 / np.cos(np.radians(lat0)))  # equal metres on both axes
    ax.set_xlim(items["lon"].min() - 0.001, items["lon"].max() + 0.001)
    ax.set_ylim(items["lat"].min() - 0.001, items["lat"].max() + 0.001)
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    artifacts.write_with(path, lambda p: fig.savefig(p, format="png"))
    return Path(path)


_STYLE = {"landuse": ("#d7e8c6", None), "water": ("#a9cdec", "#7fb0dc"), "waterways": (None, "#7fb0dc"),
          "railways": (None, "#8c8c8c"), "roads": (None, "#b5b0a8"), "buildings": ("#e2d9d0", "#c4b8ad")}


def plot_map(items: pd.DataFrame, recommendations: pd.DataFrame, surroundings: dict[str, Any] | None = None,
             ax: Any = None) -> Any:
    """Draw surroundings (GeoJSON layers of :mod:`geotower.geo.basemap`), places and ranked recommendations."""
    import matplotlib.pyplot as plt
    import numpy as np
    import shapely
    from matplotlib.collections import LineCollection, PolyCollection

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 8))
    for name, layer in (surroundings or {}).get("layers", {}).items():
        fill, edge = _STYLE.get(name, (None, "#999"))
        geoms = [shapely.from_geojson(json.dumps(f["geometry"])) for f in layer["features"]]
        polys = [np.asarray(p.exterior.coords) for g in geoms if g.geom_type in ("Polygon", "MultiPolygon")
                 for p in getattr(g, "geoms", [g])]
        lines = [np.asarray(line.coords) for g in geoms if g.geom_type in ("LineString", "MultiLineString")
                 for line in getattr(g, "geoms", [g])]
        if polys:
            ax.add_collection(PolyCollection(polys, facecolors=fill or "none", edgecolors=edge or "none",
                                             linewidths=0.3, zorder=0))
        if lines:
            ax.add_collection(LineCollection(lines, colors=edge, linewidths=0.8, zorder=1))
    ax.scatter(items[S.LON], items[S.LAT], s=6, c="#777", zorder=2, label="places")
    ax.scatter(recommendations[S.LON], recommendations[S.LAT], s=90, c="#ff8c00", edgecolors="#b35900", zorder=3,
               label="recommended")
    for rank, row in enumerate(recommendations.itertuples(index=False), start=1):
        ax.annotate(f"{rank}. {row.name or row.item_id}", (row.lon, row.lat), fontsize=7, xytext=(4, 3),
                    textcoords="offset points", zorder=4)
    lat0 = float(np.nanmean(items[S.LAT]))
    ax.set_aspect(1.0 / np.cos(np.radians(lat0)))
    ax.set_xlim(items[S.LON].min() - 0.002, items[S.LON].max() + 0.002)
    ax.set_ylim(items[S.LAT].min() - 0.002, items[S.LAT].max() + 0.002)
    ax.legend(loc="lower left", fontsize=8)
    return ax
