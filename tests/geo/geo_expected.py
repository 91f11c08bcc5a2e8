"""Paths of the geo test data and the hand-computed feature table of the tiny OSM fixture."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from geotower.schema import geo_feature_columns

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "fixtures" / "osm"
SHARED = HERE.parents[2] / "shared" / "data"


def _gon(r: float) -> float:
    """Area of geopandas' 64-gon buffer of radius r: 32 r^2 sin(pi/32)."""
    return 32 * r * r * math.sin(math.pi / 32)


def expected_table(mode: str) -> pd.DataFrame:
    """The table worked out by hand in tests/fixtures/make_osm_fixtures.py (items A, B, C; radii 100/200/500)."""
    rows: dict[str, dict[str, float]] = {k: {} for k in "ABC"}

    def put(layer: str, item: str, counts: tuple[float, ...], values: tuple[float, ...] | None = None,
            measure: str = "") -> None:
        for k, r in enumerate((100, 200, 500)):
            rows[item][f"{layer}_{r}m_count"] = counts[k]
            if values is not None:
                rows[item][f"{layer}_{r}m_{measure}"] = values[k]

    put("pois", "A", (1, 3, 4))
    put("pois", "B", (1, 1, 1))
    put("places", "C", (1, 1, 1))
    put("traffic", "A", (0, 0, 1))
    put("traffic", "C", (1, 1, 1))
    put("transport", "B", (0, 1, 1))
    clipped = mode == "clipped"
    put("roads", "A", (1, 1, 1), (200, 400, 1000) if clipped else (1200,) * 3, "len")
    put("roads", "B", (1, 1, 2), (100, 100, 200) if clipped else (100, 100, 1300), "len")
    put("railways", "A", (1, 1, 1), (100,) * 3, "len")
    for item in "AC":
        put("waterways", item, (1, 1, 1), (200, 400, 1000) if clipped else (6000,) * 3, "len")
    put("buildings", "A", (1, 1, 1), (400,) * 3, "area")
    put("buildings", "B", (1, 1, 1), (1600,) * 3, "area")
    for item, share in (("A", 0.5), ("B", 1.0), ("C", 0.25)):
        put("landuse", item, (1, 1, 1), tuple(share * _gon(r) for r in (100, 200, 500)) if clipped else (8e6,) * 3,
            "area")
    put("water", "A", (1, 1, 1), (12800,) * 3, "area")
    frame = pd.DataFrame.from_dict(rows, orient="index").reindex(columns=geo_feature_columns()).fillna(0.0)
    return frame.rename_axis("item_id").reset_index()
