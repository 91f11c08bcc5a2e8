"""``prepare yelp`` from the official download: the .tar as shipped (members under their Yelp names, other members
skipped), a .tar.gz, the extracted folder, a folder holding the tar; missing members and broken archives are one
DataError naming the archive and the member; the temporary copies are removed."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pandas as pd
import pytest
from ingest_helpers import FIXTURES
from typer.testing import CliRunner

from geotower.cli import app
from geotower.errors import ConfigError, DataError
from geotower.ingest.yelp import YelpFilter
from geotower.ingest.yelp_download import MEMBERS, yelp_files
from geotower.pipeline.prepare import YelpInputs, prepare_yelp_dataset

BIZ, REV = FIXTURES / "yelp" / "business.json", FIXTURES / "yelp" / "review.json"


def _official_layout(folder: Path) -> Path:
    """The extracted download: Yelp's five JSON-lines files and the PDF (only business and review are real)."""
    folder.mkdir()
    (folder / MEMBERS["business"]).write_bytes(BIZ.read_bytes())
    (folder / MEMBERS["review"]).write_bytes(REV.read_bytes())
    for other in ("user", "tip", "checkin"):
        (folder / f"yelp_academic_dataset_{other}.json").write_text('{"x": 1}\n')
    (folder / "Dataset_User_Agreement.pdf").write_bytes(b"%PDF-1.4\n")
    return folder


def _tar(path: Path, folder: Path, mode: str = "w", prefix: str = "", skip: str | None = None) -> Path:
    with tarfile.open(path, mode) as tar:
        for f in sorted(folder.iterdir()):
            if f.name != skip:
                tar.add(f, arcname=prefix + f.name)
    return path


def _prepare(download: Path, out: Path) -> pd.DataFrame:
    result = prepare_yelp_dataset(YelpInputs(download=download, threads=1), out, YelpFilter())
    assert (result.report.businesses_kept, result.report.reviews_kept, result.report.users) == (7, 16, 5)
    return pd.read_parquet(out / "interactions.parquet")


@pytest.mark.parametrize(("name", "mode", "prefix"), [("yelp_dataset.tar", "w", ""),
                                                      ("yelp_dataset.tar", "w", "yelp_dataset/"),
                                                      ("yelp_dataset.tgz", "w:gz", "")])
def test_tar_gives_the_same_dataset_as_the_files(tmp_path: Path, name: str, mode: str, prefix: str) -> None:
    archive = _tar(tmp_path / name, _official_layout(tmp_path / "x"), mode, prefix)
    from_tar = _prepare(archive, tmp_path / "out" / "ds")
    prepare_yelp_dataset(YelpInputs(BIZ, REV, threads=1), tmp_path / "ref", YelpFilter())
    pd.testing.assert_frame_equal(from_tar, pd.read_parquet(tmp_path / "ref" / "interactions.parquet"))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ds"]  # the temporary copies are gone


def test_extracted_folder_and_folder_holding_the_tar(tmp_path: Path) -> None:
    folder = _official_layout(tmp_path / "yelp_dataset")
    _prepare(folder, tmp_path / "a")
    holder = tmp_path / "Yelp JSON"  # what unzipping Yelp's zip gives: the tar and the PDF
    holder.mkdir()
    _tar(holder / "yelp_dataset.tar", folder)
    _prepare(holder, tmp_path / "b")


def test_copies_only_the_two_members(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "y.tar", _official_layout(tmp_path / "x"))
    with yelp_files(archive, tmp_path / "scratch") as (business, review):
        assert business.read_bytes() == BIZ.read_bytes() and review.read_bytes() == REV.read_bytes()
        assert sorted(p.name for p in business.parent.iterdir()) == ["business.json", "review.json"]
    assert list((tmp_path / "scratch").iterdir()) == []


@pytest.mark.parametrize("kind", ["business", "review"])
def test_missing_member_names_archive_and_member(tmp_path: Path, kind: str) -> None:
    archive = _tar(tmp_path / "yelp_dataset.tar", _official_layout(tmp_path / "x"), skip=MEMBERS[kind])
    with pytest.raises(DataError, match=f"no member {MEMBERS[kind]}") as info:
        _prepare(archive, tmp_path / "out")
    assert info.value.path == str(archive)
    assert not (tmp_path / "out").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["x", "yelp_dataset.tar"]


def test_missing_file_in_folder(tmp_path: Path) -> None:
    folder = _official_layout(tmp_path / "x")
    (folder / MEMBERS["review"]).unlink()
    with pytest.raises(DataError, match=MEMBERS["review"]):
        _prepare(folder, tmp_path / "out")


def test_truncated_archive_and_non_archives(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "y.tar", _official_layout(tmp_path / "x"))
    cut = tmp_path / "cut.tar"
    cut.write_bytes(archive.read_bytes()[: 512 + BIZ.stat().st_size + 3000])  # inside the review member
    with pytest.raises(DataError, match="cannot read the archive.*download complete"):
        _prepare(cut, tmp_path / "out")
    (tmp_path / "notes.txt").write_text("hello\n")
    with pytest.raises(DataError, match="not a tar archive"):
        _prepare(tmp_path / "notes.txt", tmp_path / "out")
    (tmp_path / "Yelp-JSON.zip").write_bytes(b"PK\x03\x04")
    with pytest.raises(DataError, match="extract it and pass the yelp_dataset.tar"):
        _prepare(tmp_path / "Yelp-JSON.zip", tmp_path / "out")
    with pytest.raises(DataError, match="does not exist"):
        _prepare(tmp_path / "nope.tar", tmp_path / "out")


def test_member_that_is_not_a_file(tmp_path: Path) -> None:
    archive = tmp_path / "y.tar"
    with tarfile.open(archive, "w") as tar:
        link = tarfile.TarInfo(MEMBERS["business"])
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
        data = REV.read_bytes()
        info = tarfile.TarInfo(MEMBERS["review"])
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(DataError, match="not a regular file"):
        _prepare(archive, tmp_path / "out")


def test_download_or_files_not_both(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not both"):
        prepare_yelp_dataset(YelpInputs(BIZ, REV, download=tmp_path), tmp_path / "o", YelpFilter())
    with pytest.raises(ConfigError, match="--business and --reviews"):
        prepare_yelp_dataset(YelpInputs(BIZ), tmp_path / "o", YelpFilter())


def test_cli_takes_the_tar(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "yelp_dataset.tar", _official_layout(tmp_path / "x"))
    res = CliRunner().invoke(app, ["prepare", "yelp", str(archive), "--out", str(tmp_path / "ds"), "--state", "PA"])
    assert res.exit_code == 0, res.output
    assert "4 of 11 businesses" in res.output
    res = CliRunner().invoke(app, ["prepare", "yelp", "--out", str(tmp_path / "ds2")])
    assert res.exit_code == 1 and res.stderr.startswith("error:") and "--business" in res.stderr


def test_not_enough_disk_is_said_before_copying(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil
    from collections import namedtuple

    archive = _tar(tmp_path / "yelp_dataset.tar", _official_layout(tmp_path / "x"))
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: usage(10**9, 10**9 - 100, 100))
    with pytest.raises(DataError, match=f"extracting {MEMBERS['business']} needs .* GB .* free") as info:
        _prepare(archive, tmp_path / "out")
    assert info.value.path == str(archive)
