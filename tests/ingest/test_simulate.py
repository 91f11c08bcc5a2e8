"""The diner simulator: exact Yelp format, determinism, the round trip through prepare_yelp, the generative model's
known tendencies (distance decay, taste) and Yelp's category roots; the population and the ground truth have their
own tests (test_population.py, test_ground_truth.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import typer
from ingest_helpers import HELSINKI, PHILLY
from typer.testing import CliRunner

from geotower.errors import GeotowerWarning
from geotower.ingest.dataset import load_dataset
from geotower.ingest.simulate import (
    SimConfig,
    ground_truth_scores,
    simulate,
    yelp_categories,
)
from geotower.ingest.yelp import prepare_yelp

YELP_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
CFG = SimConfig(n_reviews=3000, n_users=300, seed=7)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3000 reviews by 300 users of the 429 real Helsinki places (seed 7)."""
    out = tmp_path_factory.mktemp("sim")
    simulate(HELSINKI, out, CFG, progress=False)
    return out


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_review_json_is_exact_yelp_format(sim: Path) -> None:
    reviews = _lines(sim / "review.json")
    assert len(reviews) == 3000
    assert list(reviews[0]) == ["review_id", "user_id", "business_id", "stars", "useful", "funny", "cool", "text",
                                "date"]
    for r in reviews[:200]:
        assert YELP_ID.match(r["review_id"]) and YELP_ID.match(r["user_id"])
        assert type(r["stars"]) is int and 1 <= r["stars"] <= 5
        assert all(type(r[k]) is int for k in ("useful", "funny", "cool")) and isinstance(r["text"], str)
        assert DATE.match(r["date"])
    assert {r["stars"] for r in reviews} == {1, 2, 3, 4, 5}
    assert len({r["review_id"] for r in reviews}) == 3000
    pairs = {(r["user_id"], r["business_id"]) for r in reviews}
    assert len(pairs) == 3000  # sampling without replacement: nobody reviews a place twice
    assert len({r["user_id"] for r in reviews}) == 300


def test_business_json_is_exact_yelp_format(sim: Path) -> None:
    business = _lines(sim / "business.json")
    places = pd.read_csv(HELSINKI)
    assert [b["business_id"] for b in business] == places["business_id"].tolist()
    assert list(business[0]) == ["business_id", "name", "address", "city", "state", "postal_code", "latitude",
                                 "longitude", "stars", "review_count", "is_open", "attributes", "categories", "hours"]
    for b in business:
        assert type(b["stars"]) is float and b["stars"] * 2 == int(b["stars"] * 2)  # half stars
        assert type(b["latitude"]) is float and type(b["review_count"]) is int
    assert sum(b["review_count"] for b in business) == 3000
    assert business[0]["categories"] == "Restaurants, cafe, tee"  # OSM "cafe, tee" gets Yelp's root category


def test_same_seed_gives_identical_bytes(sim: Path, tmp_path: Path) -> None:
    simulate(HELSINKI, tmp_path / "again", CFG, progress=False)
    for name in ("business.json", "review.json", "ground_truth/users.parquet", "ground_truth/items.parquet"):
        assert (tmp_path / "again" / name).read_bytes() == (sim / name).read_bytes(), name
    simulate(HELSINKI, tmp_path / "other", SimConfig(n_reviews=3000, n_users=300, seed=8), progress=False)
    assert (tmp_path / "other" / "review.json").read_bytes() != (sim / "review.json").read_bytes()


def test_round_trip_through_prepare_yelp(sim: Path, tmp_path: Path) -> None:
    report = prepare_yelp(sim / "business.json", sim / "review.json", tmp_path / "ds")
    assert (report.businesses_kept, report.reviews_kept, report.users) == (429, 3000, 300)
    ds = load_dataset(tmp_path / "ds")
    share = ds.interactions["positive"].mean()
    assert 0.6 < share < 0.95  # stars >= 3, Yelp-like


def test_choices_follow_distance_decay_and_taste(sim: Path) -> None:
    reviews = pd.read_json(sim / "review.json", lines=True, dtype={"user_id": str, "business_id": str})
    users = pq.read_table(sim / "ground_truth" / "users.parquet").to_pandas()
    items = pd.read_csv(HELSINKI)["business_id"].tolist()
    sample = users["user_id"].tolist()[:100]
    util = ground_truth_scores(sim / "ground_truth", sample, items)  # (100, 429)
    chosen = reviews[reviews["user_id"].isin(sample)]
    u = pd.Index(sample).get_indexer(chosen["user_id"])
    i = pd.Index(items).get_indexer(chosen["business_id"])
    # chosen places have clearly higher utility than the user's average place (softmax choice)
    assert util[u, i].mean() > util.mean(axis=1)[u].mean() + 1.0
    # ratings rise with utility: mean utility of 5-star choices above that of 1-2 star choices
    stars = chosen["stars"].to_numpy()
    assert util[u, i][stars == 5].mean() > util[u, i][stars <= 2].mean()


@pytest.mark.parametrize("given, expected", [
    ("cafe, tee", "Restaurants, cafe, tee"),
    ("Fast Food", "Restaurants, Fast Food"),
    ("Food, Bakeries", "Food, Bakeries"),
    ("Sushi Bars, Restaurants", "Sushi Bars, Restaurants"),
    (None, "Restaurants"),
])
def test_yelp_categories(given: str | None, expected: str) -> None:
    assert yelp_categories(pd.Series([given]))[0] == expected


def test_osm_features_enter_the_model(tmp_path: Path) -> None:
    places = pd.read_csv(PHILLY / "restaurants.csv").head(300)
    places.to_csv(tmp_path / "places.csv", index=False)
    feats = pd.read_csv(PHILLY / "geo_feature_matrix.csv").head(290)  # 10 places without features
    feats.to_csv(tmp_path / "feats.csv", index=False)
    with pytest.warns(GeotowerWarning, match="10 places have no features"):
        simulate(tmp_path / "places.csv", tmp_path / "out", SimConfig(n_reviews=500, seed=1),
                 features=tmp_path / "feats.csv", progress=False)
    meta = json.loads((tmp_path / "out" / "ground_truth" / "meta.json").read_text())
    assert len(meta["blocks"]["osm"]) == 54 and "roads_100m_len" in meta["blocks"]["osm"]
    vec = pq.read_table(tmp_path / "out" / "ground_truth" / "items.parquet").column("vec")
    width = len(meta["blocks"]["categories"]) + len(meta["blocks"]["latent"]) + 54
    assert len(vec[0]) == width


def test_cli_simulate_then_prepare(tmp_path: Path) -> None:
    from geotower._cli.simulate import simulate as simulate_cmd

    app = typer.Typer()
    app.command("simulate")(simulate_cmd)
    app.command("noop")(lambda: None)  # a second command keeps "simulate" a named sub-command
    result = CliRunner().invoke(app, ["simulate", "--places", str(HELSINKI), "--out", str(tmp_path / "sim"),
                                      "--reviews", "400", "--users", "40", "--seed", "2"])
    assert result.exit_code == 0, result.output
    assert "400 reviews by 40 users of 429 places" in result.output
    assert len((tmp_path / "sim" / "review.json").read_text().splitlines()) == 400


def test_cli_prepare_with_osm(tmp_path: Path) -> None:
    pytest.importorskip("geotower.geo.context")
    from geotower._cli.prepare import yelp

    app, prepare = typer.Typer(), typer.Typer()
    prepare.command("yelp")(yelp)
    prepare.command("noop")(lambda: None)
    app.add_typer(prepare, name="prepare")
    simulate(HELSINKI, tmp_path / "sim", SimConfig(n_reviews=200, seed=1), progress=False)
    zip_path = HELSINKI.parent / "helsinki-free.shp.zip"
    result = CliRunner().invoke(app, ["prepare", "yelp", "--business", str(tmp_path / "sim" / "business.json"),
                                      "--reviews", str(tmp_path / "sim" / "review.json"), "--out",
                                      str(tmp_path / "ds"), "--osm", str(zip_path), "--set", "features.radii=[100]"])
    assert result.exit_code == 0, result.output
    items = pd.read_parquet(tmp_path / "ds" / "items.parquet")
    assert "pois_100m_count" in items.columns and len(items) == 429
