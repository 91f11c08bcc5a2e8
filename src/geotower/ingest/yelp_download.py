"""The official Yelp download (``yelp_dataset.tar`` or the folder it was extracted to) -> its two JSON-lines files.

DuckDB reads files by path, and cannot look inside a tar, so from an archive the two members ``prepare yelp``
needs (``yelp_academic_dataset_business.json`` and ``..._review.json``, about 0.1 + 5 GB in the 2022 dataset) are
copied in 16 MB chunks to a temporary folder the caller puts beside the output, in one sequential pass over the
archive (also for ``.tar.gz``: tar streams are read forward only), and deleted afterwards. The other members
(users, tips, check-ins, the PDF) are skipped without being written. A folder is read in place. Members are
matched by file name anywhere in the archive, so ``yelp_dataset/yelp_academic_dataset_review.json`` also works;
the simulator's names (``business.json``, ``review.json``) are accepted too.
"""

from __future__ import annotations

import contextlib
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from geotower.errors import DataError

__all__ = ["MEMBERS", "yelp_files"]

MEMBERS = {"business": "yelp_academic_dataset_business.json", "review": "yelp_academic_dataset_review.json"}
_SHORT = {"business": "business.json", "review": "review.json"}  # the simulator's names
_CHUNK = 16 * 1024 * 1024


def _names(kind: str) -> tuple[str, ...]:
    return tuple(n + gz for n in (MEMBERS[kind], _SHORT[kind]) for gz in ("", ".gz"))


def _from_folder(folder: Path) -> tuple[Path, Path] | None:
    """The folder's business/review files, or None when it holds neither (then look for a tar inside)."""
    found = {kind: next((folder / n for n in _names(kind) if (folder / n).is_file()), None) for kind in MEMBERS}
    if found["business"] is None and found["review"] is None:
        return None
    business, review = found["business"], found["review"]
    if business is None or review is None:
        kind = "business" if business is None else "review"
        raise DataError(f"the Yelp folder has no {MEMBERS[kind]} (nor {_SHORT[kind]})", path=folder)
    return business, review


def _archive_in(folder: Path) -> Path:
    tars = sorted(p for p in folder.iterdir() if p.is_file() and _is_tar_name(p.name))
    if len(tars) != 1:
        raise DataError(f"expected {MEMBERS['business']} and {MEMBERS['review']} (or one yelp_dataset.tar) in "
                        f"the folder, found {len(tars)} tar files", path=folder)
    return tars[0]


def _is_tar_name(name: str) -> bool:
    return name.endswith((".tar", ".tar.gz", ".tgz"))


def _extract(archive: Path, scratch: Path) -> tuple[Path, Path]:
    """Copy the business and review members of ``archive`` into ``scratch`` in one forward pass."""
    wanted = {n: kind for kind in MEMBERS for n in _names(kind)}
    got: dict[str, Path] = {}
    try:
        with tarfile.open(archive, mode="r|*") as tar:
            for member in tar:
                kind = wanted.get(PurePosixPath(member.name).name)
                if kind is None or kind in got:
                    continue
                if not member.isfile():
                    raise DataError(f"member {member.name} is not a regular file", path=archive)
                _check_space(scratch, member.size, archive, member.name)
                source = tar.extractfile(member)
                if source is None:
                    raise DataError(f"cannot read member {member.name}", path=archive)
                target = scratch / (kind + ".json" + (".gz" if member.name.endswith(".gz") else ""))
                with source, open(target, "wb") as sink:
                    shutil.copyfileobj(source, sink, _CHUNK)
                got[kind] = target
                if len(got) == len(MEMBERS):
                    break
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DataError(f"cannot read the archive ({' '.join(str(exc).split())[:200]}); is the download "
                        "complete?", path=archive) from None
    for kind, name in MEMBERS.items():
        if kind not in got:
            raise DataError(f"the archive has no member {name}; is this Yelp's yelp_dataset.tar?", path=archive)
    return got["business"], got["review"]


def _check_space(scratch: Path, size: int, archive: Path, member: str) -> None:
    free = shutil.disk_usage(scratch).free
    if size > free:
        raise DataError(f"extracting {member} needs {size / 1e9:.1f} GB in {scratch.parent} but only "
                        f"{free / 1e9:.1f} GB are free", path=archive)


@contextlib.contextmanager
def yelp_files(download: str | Path, scratch_parent: str | Path) -> Iterator[tuple[Path, Path]]:
    """Yield ``(business, review)`` JSON-lines paths of a Yelp download (a ``.tar``/``.tar.gz`` or a folder).

    Args:
        download: the archive as downloaded, the folder it was extracted to, or a folder holding the archive.
        scratch_parent: where the temporary folder for an archive's members goes (beside the output, so the
            copy lands on the disk the output is written to); created if needed, removed with the copies.

    Raises:
        DataError: the path does not exist, is neither a tar nor a folder, or lacks a member (named).
    """
    path = Path(download)
    if not path.exists():
        raise DataError("the Yelp download does not exist", path=path)
    if path.is_dir():
        files = _from_folder(path)
        if files is not None:
            yield files
            return
        path = _archive_in(path)
    if path.suffix == ".zip":
        raise DataError("this is the zip around Yelp's archive: extract it and pass the yelp_dataset.tar inside",
                        path=path)
    if not tarfile.is_tarfile(path):
        raise DataError("not a tar archive (expected Yelp's yelp_dataset.tar or its extracted folder)", path=path)
    parent = Path(scratch_parent)
    parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".yelp-extract-", dir=parent))
    try:
        yield _extract(path, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
