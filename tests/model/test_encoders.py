"""TableEncoder / GeoEncoder: the original numeric recipe, label encodings, geo cells, NaN policy, saved state."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from geotower.errors import ArtifactError, DataError, GeotowerWarning, NotFittedError
from geotower.model.encoders import GeoEncoder, TableEncoder


def frame() -> pd.DataFrame:
    e = math.e
    return pd.DataFrame({"item_id": ["a", "b", "c"], "name": ["A", "B", "C"],
                         "visits": [0.0, e - 1, e * e - 1],  # log1p -> 0, 1, 2
                         "delta": [-1.0, 0.0, 1.0],  # negative: standardised only
                         "cats": ["x, y", "y", None], "kind": ["k1", "k2", "k1"]})


def encoder() -> TableEncoder:
    return TableEncoder("item_id", {"cats": ", "}, ("kind",), geo_kind="none")


def test_numeric_recipe_and_labels_known_answer() -> None:
    enc = encoder().fit(frame())
    out = enc.transform(frame()).dense
    z = np.array([-1.0, 0.0, 1.0]) / math.sqrt(2 / 3)  # (v - mean 1) / std sqrt(2/3), for both columns
    np.testing.assert_allclose(out[:, 0], z, rtol=1e-5)
    np.testing.assert_allclose(out[:, 1], z, rtol=1e-5)
    # multi-hot over vocab ordered by frequency then name: y (2), x (1); then one-hot kind: k1 (2), k2 (1)
    np.testing.assert_array_equal(out[:, 2:], [[1, 1, 1, 0], [1, 0, 0, 1], [0, 0, 1, 0]])
    assert enc.feature_columns == ["visits", "delta", "cats", "kind"]
    assert enc.dense_dim == 6


def test_negative_value_clipped_for_log_columns_and_unseen_category_is_zero() -> None:
    enc = encoder().fit(frame())
    new = pd.DataFrame({"item_id": ["n"], "visits": [-5.0], "delta": [1.0], "cats": ["zzz"], "kind": ["k9"]})
    out = enc.transform(new).dense[0]
    assert out[0] == pytest.approx(-1 / math.sqrt(2 / 3), rel=1e-5)  # clipped at 0 -> log1p(0) = 0
    assert out[2:].sum() == 0


def test_nan_policy_error_names_column_and_impute_warns() -> None:
    df = frame()
    df.loc[1, "delta"] = np.nan
    with pytest.raises(DataError, match="delta"):
        encoder().fit(df)
    enc = TableEncoder("item_id", {"cats": ", "}, ("kind",), geo_kind="none", nan_policy="impute")
    with pytest.warns(GeotowerWarning, match="delta"):
        enc.fit(df)
    with pytest.warns(GeotowerWarning):
        out = enc.transform(df).dense
    assert out[1, 1] == pytest.approx(0.0, abs=1e-6)  # median of -1 and 1 = 0 = the mean of the imputed column


def test_grid_cells_separate_far_points_and_unknown_cell_is_zero() -> None:
    lat = np.array([60.1700, 60.1701, 60.2500])  # first two ~11 m apart, third ~9 km north
    lon = np.array([24.9400, 24.9400, 24.9400])
    geo = GeoEncoder("grid", (1000.0,)).fit(lat, lon)
    cells = geo.transform(lat, lon).cells[:, 0]
    assert cells[0] == cells[1] != cells[2] and (cells > 0).all()
    assert geo.transform(np.array([10.0]), np.array([10.0])).cells[0, 0] == 0
    assert geo.cell_vocab_sizes == [3]  # two occupied cells + the unknown row


def test_rff_features_are_bounded_and_smooth() -> None:
    lat, lon = np.array([60.17, 60.1701, 60.30]), np.array([24.94, 24.94, 24.94])
    geo = GeoEncoder("rff", (1000.0,), n_rff=32).fit(lat, lon)
    d = geo.transform(lat, lon).dense
    assert d.shape == (3, 32) and np.abs(d).max() <= math.sqrt(2 / 32) + 1e-6
    assert np.linalg.norm(d[0] - d[1]) < np.linalg.norm(d[0] - d[2])  # near points have near features


def test_state_round_trip_with_geo() -> None:
    df = frame().assign(lat=[60.17, 60.18, 60.19], lon=[24.9, 24.9, 24.95])
    enc = TableEncoder("item_id", {"cats": ", "}, ("kind",), geo_kind="grid", cells_m=(500.0, 2000.0)).fit(df)
    meta, arrays = enc.state()
    again = TableEncoder.from_state(meta, arrays)
    a, b = enc.transform(df), again.transform(df)
    np.testing.assert_array_equal(a.dense, b.dense)
    np.testing.assert_array_equal(a.cells, b.cells)
    assert again.feature_columns == enc.feature_columns == ["visits", "delta", "cats", "kind", "lat", "lon"]


def test_check_columns_names_missing_and_extra() -> None:
    enc = encoder().fit(frame())
    with pytest.raises(ArtifactError, match="visits"):
        enc.check_columns(frame().drop(columns="visits"))
    with pytest.raises(ArtifactError, match="surprise"):
        enc.check_columns(frame().assign(surprise=1.0))
    enc.check_columns(frame())


def test_not_fitted() -> None:
    with pytest.raises(NotFittedError):
        encoder().transform(frame())
