"""``geotower features osm`` end to end through the real Typer app, and pipeline/features.py under it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from geotower import artifacts
from geotower.cli import app
from geotower.config import FeaturesConfig
from geotower.errors import DataError
from geotower.pipeline.features import add_osm_features_to_dataset


def _run(*args: str) -> object:
    return CliRunner().invoke(app, ["features", "osm", *args])


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_writes_feature_table(tiny_zip: Path, tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"feats{suffix}"
    result = _run("--items", str(Path(tiny_zip).parent / "items.csv"), "--osm", str(tiny_zip), "--out", str(out),
                  "--radii", "100", "--mode", "whole", "--layers", "roads,pois")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    feats = artifacts.read_table(out)
    assert list(feats.columns) == ["item_id", "pois_100m_count", "roads_100m_count", "roads_100m_len"]
    assert feats["roads_100m_len"].tolist() == pytest.approx([1200, 100, 0], rel=1e-6)


def test_merge_into_dataset_folder(tiny_items: pd.DataFrame, tiny_pbf: Path, tmp_path: Path) -> None:
    artifacts.write_table(tmp_path / "items.csv", tiny_items)
    result = _run("--items", str(tmp_path), "--osm", str(tiny_pbf), "--merge", "--set", "features.layers=['water']")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    merged = artifacts.read_table(tmp_path / "items.csv")
    assert merged["water_500m_area"].iloc[0] == pytest.approx(12800, rel=1e-3)
    assert "name" in merged.columns


@pytest.mark.parametrize(("args", "message"), [
    (["--mode", "exact"], "features.mode"),
    (["--radii", "100,abc"], "--radii"),
    (["--layers", "roads,bogus"], "bogus"),
])
def test_bad_options_are_one_line_errors(tiny_zip: Path, tmp_path: Path, args: list[str], message: str) -> None:
    base = ["--items", str(Path(tiny_zip).parent / "items.csv"), "--osm", str(tiny_zip), "--out",
            str(tmp_path / "f.csv")]
    result = _run(*base, *args)
    assert result.exit_code != 0
    assert message in result.output  # type: ignore[attr-defined]


def test_needs_out_or_merge_and_names_bad_source(tiny_zip: Path, tmp_path: Path) -> None:
    items = str(Path(tiny_zip).parent / "items.csv")
    result = _run("--items", items, "--osm", str(tiny_zip))
    assert result.exit_code == 1 and "--out" in result.output  # type: ignore[attr-defined]
    result = _run("--items", items, "--osm", str(tmp_path / "nope.osm.pbf"), "--out", str(tmp_path / "f.csv"))
    assert result.exit_code == 1 and "nope.osm.pbf" in result.output  # type: ignore[attr-defined]


def test_add_features_to_dataset_folder(tiny_items: pd.DataFrame, tiny_zip: Path, tmp_path: Path) -> None:
    items = tiny_items.assign(stars=[4.0, 3.5, 5.0], roads_100m_count=[-1.0, -1.0, -1.0])
    artifacts.write_table(tmp_path / "items.parquet", items)
    path = add_osm_features_to_dataset(tmp_path, tiny_zip, FeaturesConfig(layers=("roads",)), strict=False)
    merged = artifacts.read_table(path)
    assert path == tmp_path / "items.parquet"
    assert list(merged.columns[:5]) == ["item_id", "name", "lat", "lon", "stars"]
    assert merged["roads_100m_count"].tolist() == [1.0, 1.0, 0.0]  # stale column replaced
    assert merged["stars"].tolist() == [4.0, 3.5, 5.0]
    assert len([c for c in merged.columns if c.startswith("roads_")]) == 6
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no items.parquet or items.csv"):
        add_osm_features_to_dataset(tmp_path / "empty", tiny_zip, FeaturesConfig(), strict=False)
