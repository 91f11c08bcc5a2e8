"""prepare_yelp on the JSON-lines fixture: known kept sets, filters, and every kind of bad line (warning vs strict)."""

from __future__ import annotations

import gzip
import shutil
import warnings
from pathlib import Path

import pandas as pd
import pytest
import typer
from ingest_helpers import DROP, MAKER, business, review
from typer.testing import CliRunner

from geotower.errors import ConfigError, DataError, GeotowerWarning
from geotower.ingest.dataset import load_dataset, read_spec
from geotower.ingest.yelp import YelpFilter, prepare_yelp

ALL_KEPT = ["B01", "B02", "B03", "B05", "B09", "B10", "B11"]


def ids(tags: list[str]) -> list[str]:
    return [MAKER.yid(t) for t in tags]


def test_fixture_known_answer(yelp_files: tuple[Path, Path], tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean file must not warn
        report = prepare_yelp(*yelp_files, tmp_path / "out", threads=1)
    items = pd.read_parquet(tmp_path / "out" / "items.parquet")
    assert items["item_id"].tolist() == ids(ALL_KEPT)
    assert list(items.columns) == ["item_id", "name", "lat", "lon", "stars", "categories"]
    inter = pd.read_parquet(tmp_path / "out" / "interactions.parquet")
    # 20 reviews - 2 of B04 - 1 of B06 - 1 of an unknown business = 16, by users U1..U5
    assert (report.reviews_read, report.reviews_kept, report.users, report.businesses_kept) == (20, 16, 5, 7)
    assert list(inter.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert inter["timestamp"].iloc[0] == 1514800800  # 2018-01-01 10:00:00 UTC
    assert inter["rating"].tolist()[:3] == [5.0, 4.0, 2.0]  # file order is kept
    spec = read_spec(tmp_path / "out" / "dataset.toml")
    assert (spec.rating_offset, spec.positive_threshold, spec.items.multi_label) == (2.0, 0.0, {"categories": ", "})
    ds = load_dataset(tmp_path / "out")
    assert int(ds.interactions["positive"].sum()) == int((inter["rating"] >= 3).sum()) == 12


@pytest.mark.parametrize("categories, kept", [
    ("Food, Bubble Tea, Coffee & Tea, Bakeries", True),
    ("Restaurants, Sushi Bars", True),
    ("Fast Food", False),  # "Fast Food" is not the token "Food"
    ("Grocery, Food", True),  # Food is Yelp's root category for grocery too
    ("Seafood Markets", False),
    (None, False),
    ("Sushi Bars,Restaurants", True),  # tokens are trimmed, so a missing space still matches
    ("restaurants", False),  # case-sensitive, like Yelp's category names
])
def test_restaurant_rule(categories: str | None, kept: bool, write_lines, tmp_path: Path) -> None:
    b = write_lines("b.json", [business("B01"), business("BX", categories)])
    r = write_lines("r.json", [review(0, "U1", "B01"), review(1, "U1", "BX")])
    prepare_yelp(b, r, tmp_path / "out")
    items = pd.read_parquet(tmp_path / "out" / "items.parquet")
    assert (MAKER.yid("BX") in set(items["item_id"])) is kept


@pytest.mark.parametrize("flt, expected", [
    (YelpFilter(city="PHILADELPHIA"), ["B01", "B02", "B03", "B11"]),  # B11 is "philadelphia " in lower case
    (YelpFilter(state="fl"), ["B05", "B09"]),
    (YelpFilter(city="philadelphia", state="PA"), ["B01", "B02", "B03", "B11"]),
    (YelpFilter(bbox=(-82.5, 27.9, -82.4, 27.955)), ["B05"]),  # B09 is at lat 27.96
    (YelpFilter(bbox=(-120.0, 39.0, -119.0, 40.0)), ["B10"]),
])
def test_filters(flt: YelpFilter, expected: list[str], yelp_files: tuple[Path, Path], tmp_path: Path) -> None:
    prepare_yelp(*yelp_files, tmp_path / "out", flt)
    assert pd.read_parquet(tmp_path / "out" / "items.parquet")["item_id"].tolist() == ids(expected)
    inter = pd.read_parquet(tmp_path / "out" / "interactions.parquet")
    assert set(inter["item_id"]) <= set(ids(expected))


def test_nothing_left_is_an_error(yelp_files: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no business left") as exc:
        prepare_yelp(*yelp_files, tmp_path / "out", YelpFilter(city="Nowhere"))
    assert "business.json" in str(exc.value)
    assert not (tmp_path / "out" / "items.parquet").exists()


def test_no_review_of_a_kept_business_is_an_error(write_lines, tmp_path: Path) -> None:
    b = write_lines("b.json", [business("B01")])
    r = write_lines("r.json", [review(0, "U1", "B99")])
    with pytest.raises(DataError, match=r"r\.json.*column 'business_id'.*no review left"):
        prepare_yelp(b, r, tmp_path / "out")
    assert not (tmp_path / "out" / "items.parquet").exists()


BAD_REVIEW_LINES = [  # (line text, problem, field)
    ('{"review_id": "x", "user_id": broken', "malformed JSON", None),
    ("[1, 2, 3]", "malformed JSON", None),
    (None, "missing field", "date"),
    (None, "missing field", "user_id"),
    (None, "stars not in 1..5", "stars"),
    (None, "date is not", "date"),
]


def _bad_review(k: int) -> str:
    text = BAD_REVIEW_LINES[k][0]
    if text is not None:
        return text
    return [review(90, "U9", "B01", date=DROP), review(91, "U9", "B01", user_id=DROP),
            review(92, "U9", "B01", stars=7), review(93, "U9", "B01", date="01/02/2020")][k - 2]


@pytest.mark.parametrize("k", range(len(BAD_REVIEW_LINES)))
def test_bad_review_line_warns_with_line_number(k: int, write_lines, tmp_path: Path) -> None:
    b = write_lines("b.json", [business("B01")])
    # line 1 fine, line 2 blank (ignored but counted), line 3 bad, line 4 fine
    r = write_lines("r.json", [review(0, "U1", "B01"), "", _bad_review(k), review(1, "U2", "B01")])
    _, problem, field = BAD_REVIEW_LINES[k]
    with pytest.warns(GeotowerWarning, match=problem) as rec:
        report = prepare_yelp(b, r, tmp_path / "out")
    message = str(rec[0].message)
    assert "r.json" in message and "line 3" in message
    if field is not None:
        assert f"'{field}'" in message
    assert report.reviews_kept == 2 and report.skipped["review_bad_lines"] == 1


@pytest.mark.parametrize("k", range(len(BAD_REVIEW_LINES)))
def test_bad_review_line_strict_names_line(k: int, write_lines, tmp_path: Path) -> None:
    b = write_lines("b.json", [business("B01")])
    r = write_lines("r.json", [review(0, "U1", "B01"), _bad_review(k), _bad_review(0)])
    _, problem, field = BAD_REVIEW_LINES[k]
    with pytest.raises(DataError, match=problem) as exc:
        prepare_yelp(b, r, tmp_path / "out", strict=True)
    assert (exc.value.row, exc.value.row_kind, exc.value.column) == (2, "line", field)
    assert "r.json" in str(exc.value) and "line 2" in str(exc.value)


@pytest.mark.parametrize("change, problem, field", [
    ({"latitude": None}, "missing field", "latitude"),
    ({"longitude": DROP}, "missing field", "longitude"),
    ({"latitude": 123.0}, "latitude not in", "latitude"),
    ({"longitude": "east"}, "longitude not in", "longitude"),
    ({"business_id": DROP}, "missing field", "business_id"),
    ({"stars": "good"}, "stars is not a number", "stars"),
])
def test_bad_business_line(change: dict, problem: str, field: str, write_lines, tmp_path: Path) -> None:
    b = write_lines("b.json", [business("B01"), business("B02", **change)])
    r = write_lines("r.json", [review(0, "U1", "B01"), review(1, "U1", "B02")])
    with pytest.warns(GeotowerWarning, match=problem) as rec:
        report = prepare_yelp(b, r, tmp_path / "out")
    assert "b.json" in str(rec[0].message) and "line 2" in str(rec[0].message) and f"'{field}'" in str(rec[0].message)
    assert (report.businesses_kept, report.reviews_kept) == (1, 1)
    with pytest.raises(DataError, match=problem) as exc:
        prepare_yelp(b, r, tmp_path / "strict", strict=True)
    assert "b.json" in str(exc.value) and "line 2" in str(exc.value) and f"column '{field}'" in str(exc.value)


def test_duplicate_business_keeps_first(write_lines, tmp_path: Path) -> None:
    b = write_lines("b.json", [business("B01", name="first"), business("B01", name="second")])
    r = write_lines("r.json", [review(0, "U1", "B01")])
    with pytest.warns(GeotowerWarning, match=r"b\.json.*repeating an earlier business_id \(first at line 2\)"):
        prepare_yelp(b, r, tmp_path / "out")
    assert pd.read_parquet(tmp_path / "out" / "items.parquet")["name"].tolist() == ["first"]
    with pytest.raises(DataError, match=r"b\.json, line 2, column 'business_id': duplicate"):
        prepare_yelp(b, r, tmp_path / "strict", strict=True)


def test_missing_file(yelp_files: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.json: file does not exist"):
        prepare_yelp(yelp_files[0], tmp_path / "nope.json", tmp_path / "out")


def test_gzip_and_crlf_inputs(yelp_files: tuple[Path, Path], tmp_path: Path) -> None:
    gz = tmp_path / "review.json.gz"
    with open(yelp_files[1], "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    crlf = tmp_path / "business.json"
    crlf.write_bytes(yelp_files[0].read_bytes().replace(b"\n", b"\r\n"))
    assert prepare_yelp(crlf, gz, tmp_path / "out").reviews_kept == 16


def _app() -> typer.Typer:
    from geotower._cli.prepare import yelp

    app, prepare = typer.Typer(), typer.Typer()  # without geotower.cli's error boundary: exceptions stay visible
    prepare.command("yelp")(yelp)
    prepare.command("noop")(lambda: None)  # a second command keeps "yelp" a named sub-command
    app.add_typer(prepare, name="prepare")
    return app


def test_cli_prepare_yelp(yelp_files: tuple[Path, Path], tmp_path: Path) -> None:
    args = ["prepare", "yelp", "--business", str(yelp_files[0]), "--reviews", str(yelp_files[1]),
            "--out", str(tmp_path / "out"), "--state", "PA", "--threads", "1"]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    assert "4 of 11 businesses" in result.output and "peak memory" in result.output
    bad = CliRunner().invoke(_app(), args[:-2] + ["--bbox", "1,2,3"])
    assert isinstance(bad.exception, ConfigError) and "--bbox" in str(bad.exception)
