"""``prepare checkins``: the public check-in formats (fixtures in their exact published layout), generic columns,
the dataset.toml mapping and the errors that name file, line and column."""

from __future__ import annotations

import gzip
import warnings
from pathlib import Path

import pandas as pd
import pytest

from geotower.errors import DataError, GeotowerWarning
from geotower.ingest.checkins import mapping_from_toml, prepare_checkins, read_checkins, resolve_format
from geotower.ingest.dataset import load_dataset

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "checkins"


def test_foursquare_tsmc_reads_the_published_layout(tmp_path: Path) -> None:
    res = prepare_checkins(FIX / "dataset_TSMC2014_NYC.txt", tmp_path / "ds", resolve_format("foursquare-tsmc"))
    ds = load_dataset(tmp_path / "ds")
    raw = pd.read_csv(FIX / "dataset_TSMC2014_NYC.txt", sep="\t", header=None, encoding="latin-1")
    assert res.n_checkins == len(raw) == len(ds.interactions)
    assert set(ds.items["item_id"]) == set(raw[1])
    # the UTC time column becomes epoch seconds
    first = pd.Timestamp(pd.to_datetime(raw[7].iloc[0], format="%a %b %d %H:%M:%S %z %Y")).timestamp()
    assert ds.interactions["timestamp"].iloc[0] == int(first)
    cafe = ds.items.set_index("item_id").loc["4d48aed22f5eb60c73c1b9df"]
    assert cafe["category"] == "Caf\u00e9" and cafe["lat"] == pytest.approx(40.7323)
    assert ds.spec.items.categorical == ("category",)


def test_gowalla_gz_and_brightkite_drop_unknown_places(tmp_path: Path) -> None:
    inter, items, dropped = read_checkins(FIX / "loc-gowalla_totalCheckins.txt.gz", resolve_format("gowalla"))
    with gzip.open(FIX / "loc-gowalla_totalCheckins.txt.gz", "rt") as f:
        n = sum(1 for _ in f)
    assert len(inter) == n and not any(dropped.values())
    assert items.set_index("item_id").loc["22847", "lat"] == pytest.approx(30.2359091167)
    with pytest.warns(GeotowerWarning, match="dropped"):
        res = prepare_checkins(FIX / "loc-brightkite_totalCheckins.txt", tmp_path / "bk", resolve_format("brightkite"))
    # one row has no ids, four check-ins are at a place written as 0.0 0.0
    assert res.dropped == {"rows without a user or place id": 1, "check-ins at places without coordinates": 4}
    assert res.n_items == 3 and load_dataset(tmp_path / "bk").has_timestamps


def test_foursquare_global_takes_coordinates_from_the_poi_file(tmp_path: Path) -> None:
    fmt = resolve_format("foursquare-global")
    with pytest.raises(DataError, match="--pois"):
        read_checkins(FIX / "dataset_TIST2015_Checkins.txt", fmt)
    res = prepare_checkins(FIX / "dataset_TIST2015_Checkins.txt", tmp_path / "g", fmt,
                           pois=FIX / "dataset_TIST2015_POIs.txt")
    ds = load_dataset(tmp_path / "g")
    assert res.n_items == 4 and set(ds.items["category"]) == {"Jazz Club", "Gym", "Train Station", "Ramen Restaurant"}


def test_generic_columns_csv_with_header_and_rating(tmp_path: Path) -> None:
    src = tmp_path / "log.csv"
    src.write_text("who,where,when,y,x,stars\nu1,p1,2020-01-01T10:00:00Z,60.1,24.9,5\n"
                   "u2,p1,2020-01-02T10:00:00Z,60.1,24.9,1\nu1,p2,2020-01-02T10:00:00+00:00,60.2,24.8,4\n")
    fmt = resolve_format(user="who", item="where", time="when", lat="y", lon="x", rating="stars")
    prepare_checkins(src, tmp_path / "ds", fmt)
    ds = load_dataset(tmp_path / "ds")
    assert ds.interactions["positive"].tolist() == [True, False, True]  # rating - 2 > 0
    assert ds.interactions["timestamp"].tolist() == [1577872800, 1577959200, 1577959200]


def test_parquet_input_and_mapping_in_dataset_toml(tmp_path: Path) -> None:
    pd.DataFrame({"uid": ["a", "b"], "vid": ["x", "y"], "la": [1.0, 2.0], "lo": [3.0, 4.0]}).to_parquet(
        tmp_path / "c.parquet")
    toml = tmp_path / "dataset.toml"
    toml.write_text('[checkins]\nuser = "uid"\nitem = "vid"\nlat = "la"\nlon = "lo"\n\n[items]\nexclude = []\n')
    mapping, spec = mapping_from_toml(toml)
    prepare_checkins(tmp_path / "c.parquet", tmp_path / "ds", resolve_format(**mapping), spec=spec)
    assert len(load_dataset(tmp_path / "ds").items) == 2


def test_errors_name_file_line_and_column(tmp_path: Path) -> None:
    src = tmp_path / "bad.tsv"
    src.write_text("u\ti\tlat\tlon\nu1\tp1\t60.1\t24.9\nu2\tp2\tsixty\t24.9\n")
    with pytest.raises(DataError) as err:
        read_checkins(src, resolve_format(user="u", item="i", lat="lat", lon="lon"))
    assert "bad.tsv" in str(err.value) and "row 3" in str(err.value)  # row = line of the file
    assert "lat" in str(err.value) and "sixty" in str(err.value)
    with pytest.raises(DataError, match="no column 'venue'"):
        read_checkins(src, resolve_format(user="u", item="venue"))
    with pytest.raises(DataError, match="unknown preset"):
        resolve_format("yelp-ish")
    with pytest.raises(DataError, match="cannot parse time"):
        bad_time = tmp_path / "t.csv"
        bad_time.write_text("u,i,t\na,b,yesterday\n")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            read_checkins(bad_time, resolve_format(user="u", item="i", time="t"))
