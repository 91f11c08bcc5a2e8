"""``geotower prepare checkins`` on a public-format fixture; ``recommend --explain --json`` prints reasons."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from geotower.cli import app
from geotower.ingest.dataset import load_dataset

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "checkins"
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "retrieve"))


def test_prepare_checkins_preset_and_json_summary(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["prepare", "checkins", str(FIX / "dataset_TSMC2014_NYC.txt"), "--preset",
                                   "foursquare-tsmc", "--out", str(tmp_path / "ds"), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["checkins"] == 28 and summary["places"] == 7
    assert len(load_dataset(tmp_path / "ds").interactions) == 28


def test_prepare_checkins_mapping_from_dataset_toml(tmp_path: Path) -> None:
    spec = tmp_path / "dataset.toml"
    spec.write_text('[checkins]\npreset = "gowalla"\n')
    res = CliRunner().invoke(app, ["prepare", "checkins", str(FIX / "loc-gowalla_totalCheckins.txt.gz"), "--spec",
                                   str(spec), "--out", str(tmp_path / "ds")])
    assert res.exit_code == 0, res.output
    assert load_dataset(tmp_path / "ds").has_timestamps


def test_prepare_checkins_without_columns_is_one_error_line(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["prepare", "checkins", str(FIX / "dataset_TIST2015_Checkins.txt"),
                                   "--out", str(tmp_path / "ds")])
    assert res.exit_code == 1 and "--user" in res.output


def test_recommend_explain_json(tmp_path_factory: pytest.TempPathFactory) -> None:
    from retrieve_fakes import make_tiny_run

    run = make_tiny_run(tmp_path_factory.getbasetemp() / "tiny-real-run")
    res = CliRunner().invoke(app, ["recommend", str(run), "--user", "u1", "--k", "3", "--explain", "--json"])
    assert res.exit_code == 0, res.output
    items = json.loads(res.stdout)["items"]
    assert len(items) == 3 and all(it["reasons"]["liked"] and it["reasons"]["text"] for it in items)


def test_cli_preset_names_match_the_library() -> None:
    from geotower._cli.checkins import PRESET_NAMES
    from geotower.ingest.checkins import PRESETS

    assert set(PRESET_NAMES) == set(PRESETS)
