"""The dataset-folder contract (ingest/dataset.py, ingest/columns.py, ingest/spec.py) on bad inputs.

Every error must name the file, the row (0-based data row) and the column, so a user can go straight to it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from geotower.errors import DataError, GeotowerWarning
from geotower.ingest.dataset import DatasetSpec, TableSpec, load_dataset, read_spec, write_dataset

ITEMS = pd.DataFrame({"item_id": ["a", "b", "c"], "lat": [39.9, 39.95, 40.0], "lon": [-75.1, -75.2, -75.3]})
INTER = pd.DataFrame({"user_id": ["u1", "u1", "u2", "u2"], "item_id": ["a", "b", "b", "c"],
                      "rating": [5, 1, 4, 3], "timestamp": [100, 200, 300, 400]})


def assert_names(exc: pytest.ExceptionInfo[DataError], file: str, row: int | None, column: str | None) -> None:
    text = str(exc.value)
    assert file in text, text
    if row is not None:
        assert f"row {row}" in text, text
    if column is not None:
        assert f"column {column!r}" in text, text


def test_valid_folder_known_answer(dataset_dir) -> None:
    ds = load_dataset(dataset_dir(INTER, ITEMS))
    # positive = rating - 2 > 0: ratings 5, 1, 4, 3 -> True, False, True, True
    assert ds.interactions["positive"].tolist() == [True, False, True, True]
    assert ds.interactions["weight"].tolist() == [1.0] * 4 and ds.has_timestamps and ds.has_coordinates


@pytest.mark.parametrize("table, drop", [("interactions", "item_id"), ("interactions", "user_id"),
                                         ("items", "item_id")])
def test_missing_required_column(table: str, drop: str, dataset_dir) -> None:
    inter, items = INTER.copy(), ITEMS.copy()
    frames = {"interactions": inter, "items": items}
    frames[table] = frames[table].drop(columns=drop)
    folder = dataset_dir(frames["interactions"], frames["items"])
    with pytest.raises(DataError, match="missing required column") as exc:
        load_dataset(folder)
    assert_names(exc, f"{table}.csv", None, drop)


def test_duplicate_item_ids(dataset_dir) -> None:
    items = pd.concat([ITEMS, ITEMS.iloc[[1]]], ignore_index=True)
    with pytest.raises(DataError, match="duplicate id 'b'") as exc:
        load_dataset(dataset_dir(INTER, items))
    assert_names(exc, "items.csv", 3, "item_id")


@pytest.mark.parametrize("column, value", [("lat", np.nan), ("lat", 91.0), ("lon", -181.0), ("lon", "east")])
def test_bad_coordinates(column: str, value: object, dataset_dir) -> None:
    items = ITEMS.astype({column: object})
    items.loc[2, column] = value
    with pytest.raises(DataError, match=f"{column} must be a number") as exc:
        load_dataset(dataset_dir(INTER, items))
    assert_names(exc, "items.csv", 2, column)


def test_unknown_items_dropped_with_warning_or_strict_error(dataset_dir) -> None:
    inter = pd.concat([INTER, pd.DataFrame({"user_id": ["u3"], "item_id": ["zz"], "rating": [5],
                                            "timestamp": [500]})], ignore_index=True)
    folder = dataset_dir(inter, ITEMS)
    with pytest.warns(GeotowerWarning, match="1 interactions reference unknown item_id"):
        ds = load_dataset(folder)
    assert len(ds.interactions) == 4 and ds.dropped == {"interactions": 1}
    with pytest.raises(DataError) as exc:
        load_dataset(folder, strict=True)
    assert_names(exc, "interactions.csv", 4, "item_id")


def test_unknown_users_when_users_table_given(dataset_dir) -> None:
    users = pd.DataFrame({"user_id": ["u1"], "age": [30]})
    folder = dataset_dir(INTER, ITEMS, users=users)
    with pytest.warns(GeotowerWarning, match="2 interactions reference unknown user_id"):
        assert len(load_dataset(folder).interactions) == 2
    with pytest.raises(DataError) as exc:
        load_dataset(folder, strict=True)
    assert_names(exc, "interactions.csv", 2, "user_id")


def test_nothing_left_after_filtering(dataset_dir) -> None:
    inter = INTER.assign(item_id=["x", "y", "y", "z"])
    with pytest.warns(GeotowerWarning), pytest.raises(DataError, match="no interactions left") as exc:
        load_dataset(dataset_dir(inter, ITEMS))
    assert_names(exc, "interactions.csv", None, None)


def test_no_positive_interactions(dataset_dir) -> None:
    with pytest.raises(DataError, match="no positive interactions") as exc:
        load_dataset(dataset_dir(INTER.assign(rating=[1, 2, 1, 2]), ITEMS))
    assert_names(exc, "interactions.csv", None, "rating")


def test_undeclared_string_column(dataset_dir) -> None:
    items = ITEMS.assign(cuisine=["thai", "pizza", "thai"])
    with pytest.raises(DataError, match="neither declared.*'thai'") as exc:
        load_dataset(dataset_dir(INTER, items))
    assert_names(exc, "items.csv", None, "cuisine")
    ok = dataset_dir(INTER, items, toml='[items]\ncategorical = ["cuisine"]\n')
    assert load_dataset(ok).items["cuisine"].tolist() == ["thai", "pizza", "thai"]


def test_unknown_toml_key(dataset_dir) -> None:
    folder = dataset_dir(INTER, ITEMS, toml="[interactions]\nrating_ofset = 2.0\n")
    with pytest.raises(DataError, match="unknown key interactions.rating_ofset") as exc:
        load_dataset(folder)
    assert_names(exc, "dataset.toml", None, "rating_ofset")
    with pytest.raises(DataError, match=r"unknown section \[extra\]"):
        read_spec(_write(folder / "dataset.toml", "[extra]\nx = 1\n"))


def _write(path, text: str):
    path.write_text(text)
    return path


def test_declared_numeric_coercion(dataset_dir) -> None:
    items = ITEMS.assign(price=["10", "ten", "30"])
    folder = dataset_dir(INTER, items, toml='[items]\nnumeric = ["price"]\n')
    with pytest.warns(GeotowerWarning, match=r"column 'price': 1 values are not numbers \(first at row 1: 'ten'\); "
                                             r"imputed with the median 20"):
        ds = load_dataset(folder)
    assert ds.items["price"].tolist() == [10.0, 20.0, 30.0]


def test_iso_and_epoch_timestamps_agree(dataset_dir, tmp_path) -> None:
    epoch = load_dataset(dataset_dir(INTER.assign(timestamp=[1514800800] * 4), ITEMS))
    iso = INTER.assign(timestamp=["2018-01-01 10:00:00", "2018-01-01T10:00:00Z", "2018-01-01T11:00:00+01:00",
                                  "2018-01-01 10:00:00"])
    parsed = load_dataset(dataset_dir(iso, ITEMS))
    assert parsed.interactions["timestamp"].tolist() == epoch.interactions["timestamp"].tolist() == [1514800800] * 4
    with pytest.raises(DataError, match="timestamp must be epoch seconds or an ISO date") as exc:
        load_dataset(dataset_dir(INTER.assign(timestamp=["2018-01-01", "yesterday", "2018-01-02", "2018-01-03"]),
                                 ITEMS))
    assert_names(exc, "interactions.csv", 1, "timestamp")


def test_bad_rating_names_row(dataset_dir) -> None:
    with pytest.raises(DataError, match="must be a finite number") as exc:
        load_dataset(dataset_dir(INTER.assign(rating=[5, 4, "five", 3]), ITEMS))
    assert_names(exc, "interactions.csv", 2, "rating")


def test_write_dataset_round_trip(tmp_path) -> None:
    spec = DatasetSpec(items=TableSpec(multi_label={"categories": ", "}))
    items = ITEMS.assign(categories=["Food, Bakeries", "Restaurants", None])
    write_dataset(tmp_path / "ds", INTER, items, spec)
    ds = load_dataset(tmp_path / "ds")
    assert ds.spec == spec and len(ds.interactions) == 4 and ds.items["categories"].iloc[0] == "Food, Bakeries"
