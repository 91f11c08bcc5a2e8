"""The documented bad-line policy of ``prepare yelp`` for bytes DuckDB cannot read (issue #13 "Also"), truncated
gzip files (case 11), option checks before any read (the bbox-in-SQL traceback) and the atomic rewrite (case 5)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pytest

from geotower import artifacts
from geotower.errors import ConfigError, DataError, GeotowerWarning
from geotower.ingest.yelp import YelpFilter, prepare_yelp

REVIEW = '{{"review_id": "r{i}", "user_id": "u{i}", "business_id": "b1", "stars": 4, "date": "2020-01-01 10:00:00"}}'


@pytest.fixture
def business(tmp_path: Path) -> Path:
    path = tmp_path / "business.json"
    path.write_text(json.dumps({"business_id": "b1", "name": "x", "latitude": 60.1, "longitude": 24.9,
                                "stars": 4.0, "categories": "Restaurants"}) + "\n")
    return path


def _reviews(tmp_path: Path, special: dict[int, bytes], n: int = 8) -> Path:
    lines = [special.get(i, REVIEW.format(i=i).encode()) for i in range(n)]
    path = tmp_path / "review.json"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_non_utf8_and_overlong_lines_are_skipped_and_reported_with_true_line_numbers(business: Path,
                                                                                      tmp_path: Path) -> None:
    bad_bytes = REVIEW.format(i=1).replace('"u1"', '"u\xff"').encode("latin-1")
    overlong = REVIEW.format(i=3)[:-1].encode() + b', "text": "' + b"y" * (3 << 20) + b'"}'
    out_of_range = REVIEW.format(i=5).replace('"stars": 4', '"stars": 9').encode()
    reviews = _reviews(tmp_path, {1: bad_bytes, 3: overlong, 5: out_of_range})
    with pytest.warns(GeotowerWarning) as record:
        report = prepare_yelp(business, reviews, tmp_path / "ds")
    text = " | ".join(str(w.message) for w in record)
    assert "not UTF-8 text (line 2)" in text and "longer than 2 MB (line 4)" in text
    assert "stars not in 1..5, field 'stars' (line 6)" in text  # numbering still counts the rejected lines
    assert report.skipped["review_bad_lines"] == 3 and report.reviews_read == 8
    kept = pd.read_parquet(tmp_path / "ds" / "interactions.parquet")["user_id"].tolist()
    assert kept == ["u0", "u2", "u4", "u6", "u7"]
    with pytest.raises(DataError, match="line 2: not UTF-8 text"):
        prepare_yelp(business, reviews, tmp_path / "ds2", strict=True)


def test_truncated_gzip_is_an_error(business: Path, tmp_path: Path) -> None:
    data = b"".join(REVIEW.format(i=i).encode() + b"\n" for i in range(20_000))
    packed = gzip.compress(data)
    (tmp_path / "review.json.gz").write_bytes(packed[: len(packed) // 2])
    with pytest.raises(DataError, match="truncated or corrupt"):
        prepare_yelp(business, tmp_path / "review.json.gz", tmp_path / "ds")
    assert not (tmp_path / "ds").exists()
    (tmp_path / "review.json.gz").write_bytes(packed)
    assert prepare_yelp(business, tmp_path / "review.json.gz", tmp_path / "ds").reviews_kept == 20_000


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"flt": YelpFilter(bbox=(float("nan"),) * 4)}, "--bbox"),
    ({"flt": YelpFilter(bbox=(1.0, 1.0, 0.0, 0.0))}, "--bbox"),
    ({"flt": YelpFilter(bbox=(-200.0, 0.0, 0.0, 1.0))}, "--bbox"),
    ({"memory_limit": "abc"}, "--memory-limit"),
    ({"threads": -1}, "--threads"),
    ({"threads": 0}, "--threads"),
])
def test_bad_options_are_config_errors_before_reading(business: Path, tmp_path: Path, kwargs: dict,
                                                      message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        prepare_yelp(business, _reviews(tmp_path, {}), tmp_path / "ds", **kwargs)
    assert not (tmp_path / "ds").exists()


def test_paths_that_are_folders_or_files_in_the_wrong_place(business: Path, tmp_path: Path) -> None:
    reviews = _reviews(tmp_path, {})
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(DataError, match="is a folder"):
        prepare_yelp(business, tmp_path / "dir.json", tmp_path / "ds")
    (tmp_path / "taken").write_text("x")
    with pytest.raises(ConfigError, match="is an existing file"):
        prepare_yelp(business, reviews, tmp_path / "taken")
    with pytest.raises(ConfigError, match="overlaps the input"):
        prepare_yelp(business, reviews, tmp_path)  # would replace the folder holding the raw files
    assert business.exists() and reviews.exists()


def test_failed_rewrite_keeps_the_old_dataset_and_no_spill_folder(business: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    prepare_yelp(business, _reviews(tmp_path, {}), out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(DataError):  # every review points at another business: fails after the items were read
        prepare_yelp(business, _reviews(tmp_path, {i: REVIEW.format(i=i).replace("b1", "zz").encode()
                                                    for i in range(8)}), out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert artifacts.verify_folder(out, "dataset")["generation"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["business.json", "ds", "review.json"]
