"""``--json`` on every command: stdout is exactly one JSON document holding the command's result, and nothing else
(the human summary goes to stderr). Each command runs once on the small fixtures the other tests use."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from geotower.cli import app

TESTS = Path(__file__).resolve().parents[1]
FIXTURES = TESTS / "fixtures"
sys.path.insert(0, str(TESTS / "retrieve"))
from retrieve_fakes import make_tiny_run  # noqa: E402

TINY = ["--set", "model.embed_dim=8", "--set", "model.hidden_dim=16", "--set", "train.epochs=1"]


def run_json(*args: str) -> tuple[dict[str, Any], str]:
    """Invoke ``geotower ARGS --json``; returns (the parsed stdout, stderr) after checking stdout is one line."""
    res = CliRunner().invoke(app, [*args, "--json"])
    assert res.exit_code == 0, (res.output, res.exception)
    assert res.stdout.endswith("\n") and res.stdout.count("\n") == 1, res.stdout  # one document, nothing else
    doc = json.loads(res.stdout)
    assert isinstance(doc, dict)
    return doc, res.stderr


def _leaves(cmd: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """(name path, command) of every leaf command (typer bundles its own click, hence the duck typing)."""
    if hasattr(cmd, "commands"):
        return [leaf for name, sub in cmd.commands.items() for leaf in _leaves(sub, (*path, name))]
    return [(path, cmd)]


def test_every_command_has_json() -> None:
    leaves = _leaves(typer.main.get_command(app))
    assert len(leaves) == 10
    missing = [" ".join(p) for p, c in leaves if not any("--json" in param.opts for param in c.params)]
    assert missing == []


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """make_tiny_run's folder (data/ and run/), shared with the other test modules that use it."""
    return make_tiny_run(tmp_path_factory.getbasetemp() / "tiny-real-run").parent


@pytest.fixture
def run_copy(tiny_root: Path, tmp_path: Path) -> Path:
    """A copy of the tiny run for commands that write into it (evaluate, index)."""
    return Path(shutil.copytree(tiny_root / "run", tmp_path / "run"))


def test_prepare_yelp(tmp_path: Path) -> None:
    doc, err = run_json("prepare", "yelp", "--business", str(FIXTURES / "yelp" / "business.json"), "--reviews",
                        str(FIXTURES / "yelp" / "review.json"), "--out", str(tmp_path / "ds"))
    assert (doc["businesses_read"], doc["businesses_kept"], doc["reviews_kept"], doc["users"]) == (11, 7, 16, 5)
    assert doc["out"] == str(tmp_path / "ds") and doc["osm_items"] is None and doc["seconds"] >= 0
    assert "7 of 11 businesses" in err


def test_prepare_checkins(tmp_path: Path) -> None:
    doc, err = run_json("prepare", "checkins", str(FIXTURES / "checkins" / "dataset_TSMC2014_NYC.txt"),
                        "--preset", "foursquare-tsmc", "--out", str(tmp_path / "ds"))
    assert (doc["checkins"], doc["places"]) == (28, 7) and set(doc) >= {"out", "users", "dropped"}
    assert "28 check-ins" in err


def test_features_osm(tmp_path: Path) -> None:
    osm = FIXTURES / "osm" / "tiny-free.shp.zip"
    doc, err = run_json("features", "osm", "--items", str(osm.parent / "items.csv"), "--osm", str(osm), "--out",
                        str(tmp_path / "f.parquet"), "--radii", "100", "--mode", "whole", "--layers", "roads")
    assert doc["items"] == 3 and doc["columns"] == ["roads_100m_count", "roads_100m_len"]
    assert doc["out"] == str(tmp_path / "f.parquet") and doc["merged_into"] is None and doc["radii"] == [100]
    assert "wrote 3 items" in err


def test_simulate(tmp_path: Path) -> None:
    places = pd.DataFrame({"business_id": [f"b{i}" for i in range(12)], "name": [f"P{i}" for i in range(12)],
                           "lat": [60.17 + 0.001 * i for i in range(12)], "lon": [24.94] * 12,
                           "categories": ["Restaurants, Cafes"] * 12, "stars": [4.0] * 12})
    places.to_csv(tmp_path / "places.csv", index=False)
    doc, err = run_json("simulate", "--places", str(tmp_path / "places.csv"), "--out", str(tmp_path / "sim"),
                        "--reviews", "60", "--users", "6")
    assert (doc["reviews"], doc["users"], doc["places"]) == (60, 6, 12)
    assert Path(doc["business_file"]).exists() and Path(doc["review_file"]).exists()
    assert "60 reviews by 6 users" in err


def test_train(tiny_root: Path, tmp_path: Path) -> None:
    doc, err = run_json("train", str(tiny_root / "data"), "--out", str(tmp_path / "r"), "--quiet", *TINY)
    assert doc["run"] == str(tmp_path / "r") and doc["epochs_run"] == 1 and doc["items"] == 40
    assert set(doc) >= {"best_epoch", "val_metrics", "users", "cold_users", "wall_time_s"}
    assert (tmp_path / "r" / "manifest.json").exists() and "run written to" in err


def test_evaluate(run_copy: Path, tmp_path: Path) -> None:
    test = tmp_path / "test.csv"  # u0 and u1 trained on p0..p7 and p3..p10; these places are new to them
    pd.DataFrame({"user_id": ["u0", "u1"], "item_id": ["p30", "p31"], "rating": [5.0, 5.0],
                  "timestamp": [1_700_000_000] * 2}).to_csv(test, index=False)
    doc, err = run_json("evaluate", str(run_copy), "--k", "2", "--test", str(test), "--quiet")
    assert doc["users"] == 2 and doc["test_rows"] == 2
    assert set(doc) >= {"recall@2", "ndcg@2", "hitrate@2", "precision@2", "users", "models", "paths"}
    assert doc["k"] == 2 and doc["models"]["geotower"]["recall"] == doc["recall@2"]
    assert Path(doc["paths"]["markdown"]).exists() and "metrics @ K=2" in err


def test_index(run_copy: Path) -> None:
    doc, err = run_json("index", str(run_copy), "--kind", "flat")
    assert (doc["kind"], doc["items"], doc["added"]) == ("flat", 40, 0) and doc["recall_at_10"] == 1.0
    assert Path(doc["index"]).exists() and "index flat" in err


def test_recommend(tiny_root: Path) -> None:
    doc, _ = run_json("recommend", str(tiny_root / "run"), "--user", "u1", "--k", "3")
    assert doc["mode"] == "user" and [set(it) >= {"item_id", "score"} for it in doc["items"]] == [True] * 3


def test_demo(tmp_path: Path) -> None:
    doc, err = run_json("demo", "--out", str(tmp_path / "d"), "--users", "60", "--reviews", "700", "--quiet",
                        *TINY)
    assert Path(doc["report"]).exists() and doc["run"] == str(tmp_path / "d" / "run")
    assert "geotower" in doc["models"] and "popular" in doc["models"] and "train" in doc["timings"]
    assert "report:" in err


def test_error_leaves_stdout_empty(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["recommend", str(tmp_path / "no-run"), "--json"])
    assert res.exit_code == 1 and res.stdout == "" and res.stderr.startswith("error:")
