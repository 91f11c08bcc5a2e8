"""Atomic files in safe formats: JSON, CSV/parquet tables, safetensors arrays, sha256 fingerprints.

Every write goes to a temp file in the same folder and is renamed onto the target, so a crash leaves the previous
file (or none), never half a file. Nothing here unpickles: arrays go through safetensors or
``np.load(allow_pickle=False)``, tables through parquet or CSV, metadata through JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from geotower.errors import ArtifactError, DataError

ID_COLUMNS = ("item_id", "user_id", "business_id")  # always read as strings: "007" stays "007"


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path in the same folder; on success rename it onto ``path`` (atomic on POSIX)."""
    path = Path(path)
    if path.is_dir():
        raise ArtifactError(f"cannot write {path}: it is an existing folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:  # read-only medium, a file where a folder should be, no space
        raise ArtifactError(f"cannot write {path}: {exc.strerror or exc}") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_with(path: str | Path, writer: Callable[[Path], Any]) -> Path:
    """Run ``writer(tmp_path)`` then move the result onto ``path`` atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def write_bytes(path: str | Path, data: bytes) -> Path:
    return write_with(path, lambda p: p.write_bytes(data))


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"missing artifact {path}") from None
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"corrupt JSON artifact {path}: {exc}") from None


def write_table(path: str | Path, df: pd.DataFrame) -> Path:
    """Parquet or CSV by the file's extension."""
    path = Path(path)
    if path.suffix == ".parquet":
        return write_with(path, lambda p: df.to_parquet(p, index=False))
    if path.suffix == ".csv":
        return write_with(path, lambda p: df.to_csv(p, index=False))
    raise DataError(f"unsupported table extension {path.suffix!r}; use .parquet or .csv", path=path)


def read_table(path: str | Path, **csv_kwargs: Any) -> pd.DataFrame:
    """Read parquet or CSV by extension; unreadable files raise DataError naming the file."""
    path = Path(path)
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        if path.suffix == ".csv":
            ids = {c: str for c in ID_COLUMNS if c in _csv_header(path)}
            return pd.read_csv(path, **{"dtype": ids, **csv_kwargs})
    except FileNotFoundError:
        raise DataError("file does not exist", path=path) from None
    except IsADirectoryError:
        raise DataError("is a folder, expected a file", path=path) from None
    except Exception as exc:  # pyarrow / pandas parser errors carry no file name
        raise DataError(f"cannot read table: {exc}", path=path) from None
    raise DataError(f"unsupported table extension {path.suffix!r}; use .parquet or .csv", path=path)


def _csv_header(path: Path) -> list[str]:
    """The column names of a CSV file (first line only), so id columns can be read as strings."""
    try:
        return list(pd.read_csv(path, nrows=0).columns)
    except Exception:  # an unreadable file fails again, with its message, in the full read
        return []


def save_arrays(path: str | Path, arrays: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> Path:
    """Save named numpy arrays as safetensors (contiguous copies; no pickle)."""
    from safetensors.numpy import save_file

    clean = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    check_finite(path, clean)  # a diverged model is never written
    return write_with(path, lambda p: save_file(clean, str(p), metadata=metadata))


def load_arrays(path: str | Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"missing artifact {path}")
    if path.is_dir():
        raise ArtifactError(f"artifact {path} is a folder, expected a file")
    try:
        return load_file(str(path))
    except Exception as exc:
        raise ArtifactError(f"corrupt safetensors artifact {path}: {exc}") from None


def check_finite(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Refuse an array file holding NaN or infinity (a non-finite model must never be used or served)."""
    for name, values in arrays.items():
        if np.issubdtype(values.dtype, np.floating) and not np.isfinite(values).all():
            bad = int((~np.isfinite(values)).sum())
            raise ArtifactError(f"{path}: array {name!r} holds {bad} NaN/infinite value(s): a diverged training "
                                "(try a smaller train.lr) or a corrupt file (retrain)")


_HASHES: dict[tuple[str, int, int, int], str] = {}  # (path, size, mtime_ns, inode) -> sha256, per process


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file, computed once per process for an unchanged file (same size, mtime and inode)."""
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_size, st.st_mtime_ns, st.st_ino)
    if key in _HASHES:
        return _HASHES[key]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def fingerprint(files: dict[str, str | Path], rows: dict[str, int]) -> dict[str, Any]:
    """Data fingerprint: sha256 and size of each input file, plus row counts after loading."""
    return {
        "files": {
            name: {"name": Path(p).name, "sha256": file_sha256(p), "bytes": Path(p).stat().st_size}
            for name, p in sorted(files.items())
        },
        "rows": dict(sorted(rows.items())),
    }


def fingerprint_diff(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """Human-readable differences between two fingerprints (empty when they match)."""
    diffs = []
    for name in sorted(set(expected.get("files", {})) | set(actual.get("files", {}))):
        e, a = expected.get("files", {}).get(name), actual.get("files", {}).get(name)
        if e is None or a is None:
            diffs.append(f"{name}: present in {'run' if a is None else 'data'} only")
        elif e["sha256"] != a["sha256"]:
            diffs.append(f"{name}: content differs ({e['bytes']} bytes at training, {a['bytes']} now)")
    for name in sorted(set(expected.get("rows", {})) | set(actual.get("rows", {}))):
        if expected.get("rows", {}).get(name) != actual.get("rows", {}).get(name):
            diffs.append(f"{name} rows: {expected.get('rows', {}).get(name)} at training, "
                         f"{actual.get('rows', {}).get(name)} now")
    return diffs
