"""Atomic run and dataset folders: staging, swap, recovery, verification (geotower.artifacts.folders)."""

from __future__ import annotations

from pathlib import Path

import pytest

from geotower import artifacts
from geotower.artifacts import folders
from geotower.errors import ArtifactError


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
        monkeypatch.setattr(folders, "_renameat2_exchange", lambda a, b: False)
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
