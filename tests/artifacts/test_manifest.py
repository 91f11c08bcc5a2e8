"""The run folder's layout and manifest (geotower.artifacts.manifest)."""

from __future__ import annotations

from pathlib import Path

import pytest

from geotower import artifacts
from geotower.errors import ArtifactError


def test_manifest_records_config_and_fingerprint(tmp_path: Path) -> None:
    artifacts.write_manifest(tmp_path, {"seed": 1}, {"files": {}, "rows": {"items": 3}}, {"note": "x"})
    assert artifacts.read_json(tmp_path / "config.json") == {"seed": 1}
    manifest = artifacts.read_json(tmp_path / "manifest.json")
    assert manifest["data"]["rows"]["items"] == 3 and manifest["note"] == "x" and "geotower" in manifest


# --- atomic folders (issue #13: one mechanism for every command's output) ------------------------------------

def test_run_manifest_round_trip_and_types(tmp_path: Path) -> None:
    artifacts.write_manifest(tmp_path, {"seed": 1}, {"files": {}, "rows": {}}, {"dataset_dir": "/d", "n": 3})
    m = artifacts.read_manifest(tmp_path)
    assert m.format == artifacts.MANIFEST_FORMAT and m.dataset_dir == "/d" and m.extra == {"n": 3}
    assert "torch" in m.versions and m.to_dict()["n"] == 3
    with pytest.raises(ArtifactError, match="newer"):
        artifacts.RunManifest.from_dict({"format": 99})
    with pytest.raises(ArtifactError, match="dataset_dir"):
        artifacts.RunManifest.from_dict({"data": [], "dataset_dir": 5})
    layout = artifacts.RunLayout(tmp_path)
    assert layout / layout.MODEL_WEIGHTS == tmp_path / "model.safetensors"
