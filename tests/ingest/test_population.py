"""The simulator's population: projection, review counts and checked places (geotower.ingest.population)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from geotower.errors import ConfigError, DataError
from geotower.ingest.population import SimConfig, _review_counts, project, read_places


def test_projection_known_answer() -> None:
    # at lat 60, one degree of longitude is 111.32 * cos(60 deg) = 55.66 km; one degree of latitude 111.32 km
    # (geotower.schema.local_xy_km, the one equirectangular projection of the code base)
    np.testing.assert_allclose(project([61.0], [26.0], (60.0, 25.0)), [[55.66, 111.32]], atol=1e-3)


def test_review_counts_sum_and_cap() -> None:
    rng = np.random.default_rng(0)
    counts = _review_counts(100, SimConfig(n_reviews=2000), 30, rng)
    assert counts.sum() == 2000 and counts.min() >= 1 and counts.max() <= 30
    with pytest.raises(ConfigError, match="change --users"):
        _review_counts(10, SimConfig(n_reviews=2000), 30, rng)


@pytest.mark.parametrize("change, column, row", [
    (lambda d: d.drop(columns="lat"), "lat", None),
    (lambda d: d.assign(lon=[0.0, 200.0, 0.0]), "lon", 1),
    (lambda d: d.assign(business_id=["a", "b", "a"]), "business_id", 2),
])
def test_bad_places(change, column: str, row: int | None, tmp_path: Path) -> None:
    places = pd.DataFrame({"business_id": ["a", "b", "c"], "name": ["A", "B", "C"], "lat": [0.0, 0.0, 0.0],
                           "lon": [0.0, 0.1, 0.2], "categories": ["Food"] * 3})
    change(places).to_csv(tmp_path / "p.csv", index=False)
    with pytest.raises(DataError) as exc:
        read_places(tmp_path / "p.csv")
    assert "p.csv" in str(exc.value) and f"column {column!r}" in str(exc.value)
    if row is not None:
        assert f"row {row}" in str(exc.value)
