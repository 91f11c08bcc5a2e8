"""The only writer of run outputs: atomic writes (temp file + rename), safe formats, the run manifest.

Nothing here ever unpickles: arrays go through safetensors or ``np.load(allow_pickle=False)``, tables through
parquet, metadata through JSON. A crash mid-write leaves the previous file (or none), never half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from geotower.errors import ArtifactError, DataError

MANIFEST = "manifest.json"
CONFIG_JSON = "config.json"


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path in the same folder; on success rename it onto ``path`` (atomic on POSIX)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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
            return pd.read_csv(path, **csv_kwargs)
    except FileNotFoundError:
        raise DataError("file does not exist", path=path) from None
    except Exception as exc:  # pyarrow / pandas parser errors carry no file name
        raise DataError(f"cannot read table: {exc}", path=path) from None
    raise DataError(f"unsupported table extension {path.suffix!r}; use .parquet or .csv", path=path)


def save_arrays(path: str | Path, arrays: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> Path:
    """Save named numpy arrays as safetensors (contiguous copies; no pickle)."""
    from safetensors.numpy import save_file

    clean = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    return write_with(path, lambda p: save_file(clean, str(p), metadata=metadata))


def load_arrays(path: str | Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"missing artifact {path}")
    try:
        return load_file(str(path))
    except Exception as exc:
        raise ArtifactError(f"corrupt safetensors artifact {path}: {exc}") from None


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


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


def write_manifest(out_dir: str | Path, config: dict[str, Any], data_fingerprint: dict[str, Any],
                   extra: dict[str, Any] | None = None) -> Path:
    """Record config, data fingerprint and library versions beside a run's outputs."""
    from geotower import __version__

    out = Path(out_dir)
    write_json(out / CONFIG_JSON, config)
    manifest = {
        "geotower": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "data": data_fingerprint,
        **(extra or {}),
    }
    return write_json(out / MANIFEST, manifest)
