"""Atomic single files and safe formats (geotower.artifacts.files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from geotower import artifacts
from geotower.errors import ArtifactError, DataError


def test_atomic_write_keeps_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    artifacts.write_json(target, {"a": 1})

    def crash(p: Path) -> None:
        p.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        artifacts.write_with(target, crash)
    assert artifacts.read_json(target) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]  # no temp file left behind

def test_tables_and_arrays_round_trip(tmp_path: Path) -> None:
    df = pd.DataFrame({"item_id": ["a", "b"], "v": [1.5, 2.5]})
    for suffix in (".parquet", ".csv"):
        artifacts.write_table(tmp_path / f"t{suffix}", df)
        back = artifacts.read_table(tmp_path / f"t{suffix}")
        assert back["v"].tolist() == [1.5, 2.5]
    arrays = {"emb": np.arange(6, dtype=np.float32).reshape(2, 3)}
    artifacts.save_arrays(tmp_path / "a.safetensors", arrays)
    np.testing.assert_array_equal(artifacts.load_arrays(tmp_path / "a.safetensors")["emb"], arrays["emb"])

def test_bad_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unsupported table extension"):
        artifacts.write_table(tmp_path / "t.xlsx", pd.DataFrame())
    with pytest.raises(DataError, match="does not exist"):
        artifacts.read_table(tmp_path / "missing.parquet")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match="broken.parquet"):
        artifacts.read_table(tmp_path / "broken.parquet")
    (tmp_path / "c.json").write_text("{")
    with pytest.raises(ArtifactError, match="corrupt JSON"):
        artifacts.read_json(tmp_path / "c.json")
    (tmp_path / "c.safetensors").write_bytes(b"junk")
    with pytest.raises(ArtifactError, match="corrupt safetensors"):
        artifacts.load_arrays(tmp_path / "c.safetensors")

def test_fingerprint_diff_says_what_changed(tmp_path: Path) -> None:
    f = tmp_path / "items.csv"
    f.write_text("item_id\na\n")
    before = artifacts.fingerprint({"items": f}, {"items": 1})
    assert artifacts.fingerprint_diff(before, artifacts.fingerprint({"items": f}, {"items": 1})) == []
    f.write_text("item_id\na\nb\n")
    diff = artifacts.fingerprint_diff(before, artifacts.fingerprint({"items": f}, {"items": 2}))
    assert any("items: content differs" in d for d in diff)
    assert any("items rows: 1 at training, 2 now" in d for d in diff)

def test_csv_ids_keep_leading_zeros(tmp_path: Path) -> None:
    """Case 6: ``features osm --merge`` on a CSV dataset rewrote 007 as 7."""
    (tmp_path / "items.csv").write_text("item_id,user_id,v\n007,0012,1.5\n")
    table = artifacts.read_table(tmp_path / "items.csv")
    assert table["item_id"].tolist() == ["007"] and table["user_id"].tolist() == ["0012"]
    artifacts.write_table(tmp_path / "out.csv", table)
    assert (tmp_path / "out.csv").read_text().splitlines()[1].startswith("007,0012")

def test_directory_given_as_a_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "items.csv").mkdir()
    with pytest.raises(DataError, match="is a folder"):
        artifacts.read_table(tmp_path / "items.csv")
    (tmp_path / "a.safetensors").mkdir()
    with pytest.raises(ArtifactError, match="is a folder"):
        artifacts.load_arrays(tmp_path / "a.safetensors")
