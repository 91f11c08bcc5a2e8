"""Dataset-folder validation that used to crash or silently mislead (issue #13 cases 5, 6, 11 and the
dataset.toml / directory-as-file tracebacks), plus a property-based fuzz of the reader: any folder content gives
a Dataset or a DataError naming the file, never another exception, and the folder is never changed."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geotower import artifacts
from geotower.errors import ArtifactError, DataError, GeotowerWarning
from geotower.ingest.dataset import DatasetSpec, load_dataset, write_dataset

ITEMS = pd.DataFrame({"item_id": ["007", "b", "c"], "lat": [39.9, 39.95, 40.0], "lon": [-75.1, -75.2, -75.3]})
INTER = pd.DataFrame({"user_id": ["u1", "u1", "u2", "u2"], "item_id": ["007", "b", "b", "c"],
                      "rating": [5, 1, 4, 3], "timestamp": [1_600_000_000 + k for k in range(4)]})


@pytest.mark.parametrize(("toml", "message"), [
    ('[interactions]\nrating_offset = "two"\n', "rating_offset must be a finite number"),
    ("[interactions]\nrating_offset = nan\n", "rating_offset must be a finite number"),
    ("[interactions]\npositive_threshold = true\n", "positive_threshold must be a finite number"),
    ("[interactions]\nweight = 5\n", "weight must be a column name"),
    ("[items]\nmulti_label = 5\n", "multi_label must be a table"),
    ('[items]\nmulti_label = { categories = 1 }\n', "multi_label must be a table"),
    ('[items]\ncategorical = "categories"\n', "categorical must be a list of column names"),
    ("[items]\nexclude = [1, 2]\n", "exclude must be a list"),
])
def test_dataset_toml_types_are_named(dataset_dir, toml: str, message: str) -> None:
    with pytest.raises(DataError, match=message) as exc:
        load_dataset(dataset_dir(INTER, ITEMS, toml))
    assert "dataset.toml" in str(exc.value)


def test_categorical_string_is_not_reported_as_column_c(dataset_dir) -> None:
    with pytest.raises(DataError) as exc:
        load_dataset(dataset_dir(INTER, ITEMS, '[items]\ncategorical = "categories"\n'))
    assert "'c'" not in str(exc.value) and "categories" in str(exc.value)


def test_directory_as_file_and_file_as_folder(dataset_dir, tmp_path: Path) -> None:
    folder = dataset_dir(INTER, ITEMS)
    (folder / "dataset.toml").mkdir()
    with pytest.raises(DataError, match="is a folder"):
        load_dataset(folder)
    (folder / "dataset.toml").rmdir()
    (folder / "items.csv").unlink()
    (folder / "items.csv").mkdir()
    with pytest.raises(DataError, match="is a folder"):
        load_dataset(folder)
    (tmp_path / "plain").write_text("x")
    with pytest.raises(DataError, match="is a file, expected a dataset folder"):
        load_dataset(tmp_path / "plain")


def test_csv_ids_with_leading_zeros_survive(dataset_dir) -> None:
    ds = load_dataset(dataset_dir(INTER, ITEMS))
    assert ds.items["item_id"].tolist()[0] == "007" and ds.interactions["item_id"].tolist()[0] == "007"


@pytest.mark.parametrize("value", [1e30, -1e30, float("inf")])
def test_absurd_timestamps_are_errors_naming_the_row(dataset_dir, value: float) -> None:
    """Case 11: 1e30 became int64 min without a word."""
    inter = INTER.assign(timestamp=[1_600_000_000, 1_600_000_001, value, 1_600_000_003])
    with pytest.raises(DataError, match="timestamp must be epoch seconds") as exc:
        load_dataset(dataset_dir(inter, ITEMS))
    assert "row 2" in str(exc.value)


def test_millisecond_epochs_are_detected_with_a_warning(dataset_dir) -> None:
    inter = INTER.assign(timestamp=[1_600_000_000_000 + 1000 * k for k in range(4)])
    with pytest.warns(GeotowerWarning, match="milliseconds"):
        ds = load_dataset(dataset_dir(inter, ITEMS))
    assert ds.interactions["timestamp"].tolist() == [1_600_000_000 + k for k in range(4)]


def test_mixed_epoch_and_text_timestamps_report_the_bad_row(dataset_dir) -> None:
    inter = INTER.assign(timestamp=["1600000000", "1600000001", "soon", "1600000003"])
    with pytest.raises(DataError) as exc:
        load_dataset(dataset_dir(inter, ITEMS))
    assert "row 2" in str(exc.value) and "soon" in str(exc.value)


@pytest.mark.parametrize("value", [-1e300, 1e300, float("-inf")])
def test_astronomic_feature_values_are_errors(dataset_dir, value: float) -> None:
    """Case 11: one -1e300 zeroed a whole standardised column."""
    items = ITEMS.assign(stars=[4.0, value, 3.0])
    with pytest.raises(DataError, match="infinite or beyond") as exc:
        load_dataset(dataset_dir(INTER, items))
    assert "row 1" in str(exc.value) and "'stars'" in str(exc.value)


def test_written_dataset_is_verified_and_a_mixed_one_refused(tmp_path: Path) -> None:
    """Case 5: new items beside old interactions were accepted with only a warning."""
    folder = write_dataset(tmp_path / "ds", INTER, ITEMS, DatasetSpec())
    assert artifacts.verify_folder(folder, "dataset")["generation"] == 1
    load_dataset(folder)
    ITEMS.iloc[:2].to_parquet(folder / "items.parquet", index=False)  # what a half-finished rewrite left
    with pytest.raises(ArtifactError, match="items.parquet"):
        load_dataset(folder)


_cell = st.one_of(st.none(), st.integers(-10**20, 10**20), st.floats(allow_nan=True, allow_infinity=True),
                  st.text(max_size=6), st.sampled_from(["007", "2020-01-01", "1e400", "nan", "", "a,b"]))
_columns = st.lists(st.sampled_from(["user_id", "item_id", "rating", "timestamp", "lat", "lon", "stars", "cats"]),
                    min_size=1, max_size=5, unique=True)
_toml = st.sampled_from([None, "", "[interactions]\nrating_offset = 1\n", "[items]\ncategorical = ['cats']\n",
                         "[items]\nexclude = 'cats'\n", "[bogus]\n", "not toml ==", "[interactions]\nweight = 'w'\n"])


@given(inter_cols=_columns, item_cols=_columns, rows=st.lists(st.lists(_cell, min_size=5, max_size=5),
                                                               min_size=0, max_size=5), toml=_toml)
@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_fuzz_dataset_reader_gives_a_dataset_or_a_named_error(tmp_path_factory: pytest.TempPathFactory,
                                                              inter_cols: list[str], item_cols: list[str],
                                                              rows: list[list[object]], toml: str | None) -> None:
    folder = tmp_path_factory.mktemp("fuzz")
    pd.DataFrame([r[:len(inter_cols)] for r in rows], columns=inter_cols).to_csv(folder / "interactions.csv",
                                                                                 index=False)
    pd.DataFrame([r[:len(item_cols)] for r in rows], columns=item_cols).to_csv(folder / "items.csv", index=False)
    if toml is not None:
        (folder / "dataset.toml").write_text(toml)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GeotowerWarning)
        try:
            load_dataset(folder)
        except DataError as exc:
            assert str(folder) in str(exc) and "\n" not in str(exc).strip()
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
