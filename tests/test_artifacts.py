"""Artifacts: atomic writes leave no half file; safe formats only; fingerprints say what differs."""

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


def test_manifest_records_config_and_fingerprint(tmp_path: Path) -> None:
    artifacts.write_manifest(tmp_path, {"seed": 1}, {"files": {}, "rows": {"items": 3}}, {"note": "x"})
    assert artifacts.read_json(tmp_path / "config.json") == {"seed": 1}
    manifest = artifacts.read_json(tmp_path / "manifest.json")
    assert manifest["data"]["rows"]["items"] == 3 and manifest["note"] == "x" and "geotower" in manifest


# --- atomic folders (issue #13: one mechanism for every command's output) ------------------------------------
def _folder(path: Path, **files: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (path / name).write_text(text)
    return path


def test_staged_folder_swaps_in_complete_and_keeps_old_on_failure(tmp_path: Path) -> None:
    final = tmp_path / "out"
    with artifacts.staged_folder(final, "dataset") as stage:
        (stage / "a.txt").write_text("one")
    marker = artifacts.verify_folder(final, "dataset")
    assert marker["generation"] == 1 and set(marker["files"]) == {"a.txt"}
    with pytest.raises(RuntimeError), artifacts.staged_folder(final, "dataset") as stage:
        (stage / "a.txt").write_text("two")
        raise RuntimeError("killed")
    assert (final / "a.txt").read_text() == "one" and not artifacts.staging_path(final).exists()
    with artifacts.staged_folder(final, "dataset", keep_existing=True) as stage:
        (stage / "b.txt").write_text("b")
    assert artifacts.verify_folder(final, "dataset")["generation"] == 2
    assert sorted(p.name for p in final.iterdir()) == ["a.txt", "b.txt", "complete.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging or backup folder left


@pytest.mark.parametrize("exchange", [True, False])
def test_swap_with_and_without_renameat2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exchange: bool) -> None:
    if not exchange:
        monkeypatch.setattr(artifacts, "_renameat2_exchange", lambda a, b: False)
    final = _folder(tmp_path / "out", **{"old.txt": "old"})
    with artifacts.staged_folder(final, "run") as stage:
        (stage / "new.txt").write_text("new")
    assert sorted(p.name for p in final.iterdir()) == ["complete.json", "new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_recover_finishes_or_undoes_an_interrupted_swap(tmp_path: Path) -> None:
    final = tmp_path / "out"
    with artifacts.staged_folder(final, "run") as stage:
        (stage / "v.txt").write_text("1")
    # killed between the two renames of the fallback swap: only .out.old is left
    final.rename(tmp_path / ".out.old")
    artifacts.recover_folder(final)
    assert (final / "v.txt").read_text() == "1"
    # killed after complete.json was written into the stage but before the swap: the newer stage wins
    stage = _folder(artifacts.staging_path(final), **{"v.txt": "2"})
    artifacts.write_marker(stage, "run", 2)
    artifacts.recover_folder(final)
    assert (final / "v.txt").read_text() == "2" and not stage.exists()
    # the previous output left behind after an exchange (older generation): deleted
    stage = _folder(artifacts.staging_path(final), **{"v.txt": "old"})
    artifacts.write_marker(stage, "run", 1)
    artifacts.recover_folder(final)
    assert (final / "v.txt").read_text() == "2" and not stage.exists()


def test_recover_drops_dead_stages_but_keeps_resumable_and_live_ones(tmp_path: Path) -> None:
    final = tmp_path / "out"
    stage = _folder(artifacts.staging_path(final), **{"half.txt": "x"})
    artifacts.write_json(stage / ".lock", {"pid": 2**22 + 12345, "resumable": False})  # no such process
    artifacts.recover_folder(final)
    assert not stage.exists()
    _folder(stage, **{"half.txt": "x"})
    artifacts.write_json(stage / ".lock", {"pid": 2**22 + 12345, "resumable": True})
    artifacts.recover_folder(final)
    assert (stage / "half.txt").exists()  # train --resume continues from it
    import os
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        artifacts.write_json(stage / ".lock", {"pid": child.pid, "resumable": False})
        artifacts.recover_folder(final)
        assert stage.exists()  # a running command's stage is never touched
    finally:
        child.kill()
        child.wait()
    assert os.getpid() > 0


def test_verify_folder_messages(tmp_path: Path) -> None:
    final = tmp_path / "data"
    with artifacts.staged_folder(final, "dataset") as stage:
        (stage / "items.csv").write_text("item_id\n007\n")
    (final / "items.csv").write_text("item_id\n008\n")
    with pytest.raises(ArtifactError, match="items.csv is corrupt.*delete .*complete.json"):
        artifacts.verify_folder(final, "dataset")
    marker = artifacts.read_json(final / "complete.json")
    marker["files"]["../../etc/passwd"] = {"bytes": 1, "sha256": "0"}
    artifacts.write_json(final / "complete.json", marker)
    with pytest.raises(ArtifactError, match="outside the folder"):
        artifacts.verify_folder(final, "dataset")


def test_output_path_checks(tmp_path: Path) -> None:
    from geotower.errors import ConfigError

    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is an existing file"):
        artifacts.check_output_dir(tmp_path / "file")
    with pytest.raises(ConfigError, match="is a file"):
        artifacts.check_output_dir(tmp_path / "file" / "sub")
    with pytest.raises(ConfigError, match="overlaps the input"):
        artifacts.check_output_dir(tmp_path, [tmp_path / "data"])
    ro = _folder(tmp_path / "ro")
    ro.chmod(0o500)
    try:
        import os

        if os.access(ro, os.W_OK):  # running as root: permissions are not enforced
            pytest.skip("root ignores directory permissions")
        with pytest.raises(ConfigError, match="not writable"):
            artifacts.check_output_dir(ro / "out")
    finally:
        ro.chmod(0o700)


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
