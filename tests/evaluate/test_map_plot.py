"""Static maps (evaluate.map_plot): the notebook map draws the surroundings under the places and ranks the answers."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402
from matplotlib.collections import LineCollection, PolyCollection  # noqa: E402

from geotower.evaluate.map_plot import plot_map  # noqa: E402


def test_plot_map_draws_layers_places_and_ranked_answers() -> None:
    items = pd.DataFrame({"item_id": ["a", "b", "c"], "lat": [60.0, 60.01, 60.02], "lon": [24.9, 24.91, 24.92]})
    recs = pd.DataFrame({"item_id": ["c", "a"], "name": ["Cafe", "Park"], "lat": [60.02, 60.0], "lon": [24.92, 24.9]})
    square = {"type": "Polygon", "coordinates": [[[24.9, 60.0], [24.91, 60.0], [24.91, 60.01], [24.9, 60.0]]]}
    road = {"type": "LineString", "coordinates": [[24.9, 60.0], [24.92, 60.02]]}
    layers = {"layers": {"water": {"features": [{"geometry": square}]}, "roads": {"features": [{"geometry": road}]}}}
    ax = plot_map(items, recs, layers)
    kinds = {type(c) for c in ax.collections}
    assert PolyCollection in kinds and LineCollection in kinds
    assert [t.get_text() for t in ax.texts] == ["1. Cafe", "2. Park"]  # in rank order
    assert ax.get_xlim()[0] < 24.9 and ax.get_ylim()[1] > 60.02
