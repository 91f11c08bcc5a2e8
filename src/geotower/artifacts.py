"""The only writer of outputs: atomic files, atomic folders with a completion marker, safe formats, the manifest.

Nothing here ever unpickles: arrays go through safetensors or ``np.load(allow_pickle=False)``, tables through
parquet, metadata through JSON. A crash mid-write leaves the previous file (or none), never half a file.

Folders (run folders, dataset folders) are written the same way one level up: every command writes into a sibling
staging folder ``.<name>.partial``, writes ``complete.json`` (each file's size and sha256) last, and swaps the
staging folder in with one rename (Linux ``renameat2(RENAME_EXCHANGE)``; elsewhere two renames that
:func:`recover_folder` completes or undoes). Loaders call :func:`verify_folder`, so a mixed, truncated or flipped
folder is refused with a message that says how to recover. See docs/run-folder.md and docs/reliability.md.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from geotower.errors import ArtifactError, ConfigError, DataError

MANIFEST = "manifest.json"
CONFIG_JSON = "config.json"
COMPLETE = "complete.json"
MARKER_FORMAT = 1
MANIFEST_FORMAT = 2
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


# --- run folder: layout and manifest -----------------------------------------------------------------
@dataclass(frozen=True)
class RunLayout:
    """Every path of a run folder: the one place that names them (docs/run-folder.md describes each)."""

    root: Path

    CONFIG = CONFIG_JSON
    MANIFEST = MANIFEST
    COMPLETE = COMPLETE
    MODEL_WEIGHTS, MODEL_JSON = "model.safetensors", "model.json"
    FEATURES_JSON, FEATURES_ARRAYS = "features.json", "features.safetensors"
    ITEMS, USERS = "items.parquet", "users.parquet"
    ITEM_EMB, USER_EMB = "item_embeddings.safetensors", "user_embeddings.safetensors"
    TRAIN_SEEN, POPULARITY = "train_seen.safetensors", "popularity.safetensors"
    INDEX_JSON, INDEX_FILE = "index.json", "index.faiss"
    ADDED_ITEMS, ADDED_EMB = "added_items.parquet", "added_items.safetensors"
    CURVES, TENSORBOARD, CHECKPOINTS = "curves.png", "tb", "checkpoints"

    # written by ``train``: a run is complete only with all of them (and complete.json listing them)
    REQUIRED: ClassVar[tuple[str, ...]] = (CONFIG_JSON, MANIFEST, "model.safetensors", "model.json", "features.json",
                                 "features.safetensors", "items.parquet", "users.parquet",
                                 "item_embeddings.safetensors", "user_embeddings.safetensors",
                                 "train_seen.safetensors", "popularity.safetensors")
    # read by loaders when present (``index``, ``index --add``): they must be listed in complete.json too
    OPTIONAL: ClassVar[tuple[str, ...]] = ("index.json", "index.faiss", "added_items.parquet",
                                           "added_items.safetensors")
    # logs, checked by size only (large, never read by a loader except ``train --resume``)
    SIZE_ONLY: ClassVar[tuple[str, ...]] = ("checkpoints/", "tb/")

    def __truediv__(self, name: str) -> Path:
        return self.root / name


@dataclass(frozen=True)
class RunManifest:
    """``manifest.json``: what produced a run (versioned; ``format`` 1 had no field list and is read as 2)."""

    data: dict[str, Any]
    dataset_dir: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    format: int = MANIFEST_FORMAT

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, **self.versions, "data": self.data, "dataset_dir": self.dataset_dir,
                **self.extra}

    @classmethod
    def from_dict(cls, raw: Any, path: Path | str = MANIFEST) -> RunManifest:
        """Typed view of a manifest; a wrong type is an ArtifactError naming the field."""
        if not isinstance(raw, dict):
            raise ArtifactError(f"{path}: expected a JSON object")
        raw = dict(raw)
        fmt = raw.pop("format", 1)
        if not isinstance(fmt, int) or fmt > MANIFEST_FORMAT:
            raise ArtifactError(f"{path}: manifest format {fmt!r} is newer than this geotower reads "
                                f"({MANIFEST_FORMAT}); upgrade geotower")
        data, dataset_dir = raw.pop("data", {}), raw.pop("dataset_dir", None)
        if not isinstance(data, dict) or not (dataset_dir is None or isinstance(dataset_dir, str)):
            raise ArtifactError(f"{path}: 'data' must be an object and 'dataset_dir' a string")
        versions = {k: raw.pop(k) for k in ("geotower", "python", "numpy", "pandas", "torch", *_DISTRIBUTIONS)
                    if k in raw}
        return cls(data, dataset_dir, {k: str(v) for k, v in versions.items()}, raw, MANIFEST_FORMAT)


_DISTRIBUTIONS = ("faiss-cpu", "implicit", "duckdb", "shapely", "pyarrow", "scipy")  # recorded when installed


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape a run's numbers (read from package metadata: nothing is imported)."""
    from importlib.metadata import PackageNotFoundError, version

    from geotower import __version__

    versions = {"geotower": __version__, "python": platform.python_version(), "numpy": np.__version__,
                "pandas": pd.__version__}
    try:
        import torch

        versions["torch"] = torch.__version__
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    for dist in _DISTRIBUTIONS:
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return versions


def write_manifest(out_dir: str | Path, config: dict[str, Any], data_fingerprint: dict[str, Any],
                   extra: dict[str, Any] | None = None) -> Path:
    """Record config, data fingerprint and library versions beside a run's outputs."""
    out = Path(out_dir)
    write_json(out / CONFIG_JSON, config)
    extra = dict(extra or {})
    dataset_dir = extra.pop("dataset_dir", None)
    manifest = RunManifest(data_fingerprint, dataset_dir, library_versions(), extra)
    return write_json(out / MANIFEST, manifest.to_dict())


def read_manifest(run_dir: str | Path) -> RunManifest:
    path = Path(run_dir) / MANIFEST
    return RunManifest.from_dict(read_json(path), path)


# --- atomic folders -------------------------------------------------------------------------------------
_LOCK = ".lock"
_HINTS = {"run": "retrain it: geotower train DATA --out {path} (add --resume to continue an interrupted one)",
          "dataset": "write it again (geotower prepare ... --out {path}), or, if you changed it on purpose, "
                     "delete {path}/complete.json"}


def staging_path(final: Path) -> Path:
    return final.parent / f".{final.name}.partial"


def _old_path(final: Path) -> Path:
    return final.parent / f".{final.name}.old"


def check_output_dir(out: str | Path, inputs: Iterable[str | Path] = ()) -> Path:
    """A folder an output may be written to: not a file, not read-only, not (inside) one of the ``inputs``.

    Raises:
        ConfigError: one line naming the path and what is wrong with it.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output folder {out} is an existing file; choose a folder path")
    resolved = out.resolve()
    for inp in inputs:
        src = Path(inp).resolve()
        if resolved == src or resolved in src.parents:  # writing it would replace the input
            raise ConfigError(f"output folder {out} overlaps the input {inp}; write the output elsewhere")
    parent = next((p for p in [resolved, *resolved.parents] if p.exists()), Path("/"))
    if not parent.is_dir():
        raise ConfigError(f"cannot create output folder {out}: {parent} is a file")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write output folder {out}: {parent} is not writable")
    return out


def check_output_file(out: str | Path) -> Path:
    """A file an output may be written to: not a folder, in a writable folder."""
    out = Path(out)
    if out.is_dir():
        raise ConfigError(f"output file {out} is an existing folder; give a file name")
    parent = next((p for p in out.resolve().parents if p.exists()), Path("/"))
    if not parent.is_dir():
        raise ConfigError(f"cannot create output file {out}: {parent} is a file")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write output file {out}: {parent} is not writable")
    return out


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lock_info(stage: Path) -> dict[str, Any] | None:
    try:
        info = json.loads((stage / _LOCK).read_text())
        return info if isinstance(info, dict) else None
    except (OSError, ValueError):
        return None


def read_marker(folder: Path) -> dict[str, Any] | None:
    """``complete.json`` of ``folder`` (None when absent or unreadable)."""
    try:
        marker = json.loads((folder / COMPLETE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or not isinstance(marker.get("files"), dict):
        return None
    return marker


def _generation(folder: Path) -> int:
    marker = read_marker(folder)
    gen = marker.get("generation", 0) if marker else 0
    return gen if isinstance(gen, int) else 0


def recover_folder(final: str | Path) -> None:
    """Finish or undo a swap that a killed command left half done; drop staging folders of dead commands.

    A complete staging folder newer than ``final`` is swapped in (the command had finished writing); an older one
    is the previous output swapped out and is deleted; an incomplete one of a dead command is deleted unless it is
    resumable (``train --resume`` continues from its checkpoints). Errors (read-only media) are ignored.
    """
    final = Path(final)
    stage, old = staging_path(final), _old_path(final)
    try:
        if old.is_dir():
            if final.exists():
                shutil.rmtree(old)
            else:
                os.rename(old, final)
        if not stage.is_dir():
            return
        lock = _lock_info(stage) or {}
        if isinstance(lock.get("pid"), int) and _pid_alive(lock["pid"]) and lock["pid"] != os.getpid():
            return  # another command is writing it now
        if read_marker(stage) is not None:
            if not final.exists() or _generation(stage) > _generation(final):
                _swap(stage, final)
            else:
                shutil.rmtree(stage)
        elif not lock.get("resumable"):
            shutil.rmtree(stage)
    except OSError:
        pass


def _renameat2_exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths (Linux >= 3.15, glibc >= 2.28); False where unsupported."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    rc: int = fn(at_fdcwd, os.fsencode(str(a)), at_fdcwd, os.fsencode(str(b)), rename_exchange)
    return rc == 0


def _swap(stage: Path, final: Path) -> None:
    """Put ``stage`` at ``final`` with one rename; the previous ``final`` is deleted afterwards."""
    (stage / _LOCK).unlink(missing_ok=True)
    if not final.exists():
        os.rename(stage, final)
        return
    if _renameat2_exchange(stage, final):
        shutil.rmtree(stage, ignore_errors=True)  # now holds the previous output
        return
    old = _old_path(final)
    shutil.rmtree(old, ignore_errors=True)
    os.rename(final, old)  # a kill here leaves only .old: recover_folder renames it back
    os.rename(stage, final)
    shutil.rmtree(old, ignore_errors=True)


def _listing(folder: Path) -> Iterator[tuple[str, Path]]:
    """Every regular file of ``folder`` by relative POSIX path, skipping hidden names (temp files, the lock)."""
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or rel.as_posix() == COMPLETE or not path.is_file():
            continue
        yield rel.as_posix(), path


def write_marker(folder: Path, kind: str, generation: int) -> Path:
    """``complete.json``: the folder's kind, generation and every file's size and sha256 (written last)."""
    files = {rel: {"bytes": p.stat().st_size, "sha256": file_sha256(p)} for rel, p in _listing(folder)}
    return write_json(folder / COMPLETE, {"format": MARKER_FORMAT, "kind": kind, "generation": generation,
                                          "files": files})


def _link_tree(src: Path, dst: Path) -> None:
    """Copy ``src`` into ``dst`` as hard links (writers replace files, never edit them in place), else copies."""
    for rel, path in _listing(src):
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)


@contextmanager
def staged_folder(final: str | Path, kind: str, *, keep_existing: bool = False, resumable: bool = False,
                  reuse: bool = False, inputs: Iterable[str | Path] = ()) -> Iterator[Path]:
    """Write a folder atomically: yield a staging folder; on success mark it complete and swap it in.

    Args:
        final: the folder the command produces (``RUN``, a dataset folder).
        kind: "run" or "dataset" (recorded in ``complete.json``; selects the recovery hint).
        keep_existing: start from the current ``final``'s files (hard links): for commands that add to a folder.
        resumable: keep the staging folder when the command fails or is killed (``train``: its checkpoints);
            otherwise it is deleted on failure and by the next command.
        reuse: continue in the staging folder a resumable command left behind (``train --resume``).
        inputs: folders the output must not overlap.

    Raises:
        ConfigError: ``final`` is a file, read-only, or overlaps an input.
    """
    final = check_output_dir(final, inputs)
    recover_folder(final)
    stage = staging_path(final)
    try:
        if stage.exists() and not (reuse and stage.is_dir()):
            shutil.rmtree(stage) if stage.is_dir() else stage.unlink()
        fresh = not stage.exists()
        final.parent.mkdir(parents=True, exist_ok=True)
        stage.mkdir(exist_ok=True)
    except OSError as exc:
        raise ArtifactError(f"cannot write {final}: {exc.strerror or exc}") from None
    write_json(stage / _LOCK, {"pid": os.getpid(), "resumable": resumable})
    if fresh and keep_existing and final.is_dir():
        _link_tree(final, stage)
    try:
        yield stage
    except BaseException:
        if not resumable:
            shutil.rmtree(stage, ignore_errors=True)
        raise
    write_marker(stage, kind, _generation(final) + 1)
    _swap(stage, final)


def verify_folder(folder: str | Path, kind: str, required: Iterable[str] = (), optional: Iterable[str] = (),
                  size_only: Iterable[str] = ()) -> dict[str, Any]:
    """Check ``folder`` against its ``complete.json``: every listed file there, same size, same sha256.

    Args:
        folder: the folder to check.
        kind: "run" or "dataset".
        required: files that must be listed (a run without its embeddings is not a run).
        optional: files a loader reads when present: present means listed.
        size_only: path prefixes checked by size only (logs, checkpoints).

    Returns:
        The marker.

    Raises:
        ArtifactError: what is wrong and how to recover.
    """
    folder = Path(folder)
    recover_folder(folder)
    hint = _HINTS.get(kind, "write it again").format(path=folder)
    marker = read_marker(folder)
    if marker is None:
        state = "is missing" if not (folder / COMPLETE).exists() else "is unreadable"
        raise ArtifactError(f"{kind} folder {folder} is incomplete: {COMPLETE} {state} (an interrupted write, a "
                            f"hand edit, or a geotower older than 0.2); {hint}")
    files = marker["files"]
    listed = set(files)
    missing = [n for n in required if n not in listed] + [n for n in optional if (folder / n).exists()
                                                         and n not in listed]
    skip = tuple(size_only)
    outside = [rel for rel in files if ".." in Path(rel).parts or Path(rel).is_absolute()]
    if outside:  # never stat or hash a path the marker names outside its folder
        raise ArtifactError(f"{folder / COMPLETE} lists {outside[0]!r} outside the folder; {hint}")
    for rel, entry in files.items():
        path = folder / rel
        if not path.is_file():
            missing.append(rel)
        elif not isinstance(entry, dict) or path.stat().st_size != entry.get("bytes"):
            raise ArtifactError(f"{kind} folder {folder}: {rel} has changed size since it was written "
                                f"(truncated or replaced); {hint}")
        elif not rel.startswith(skip) and file_sha256(path) != entry.get("sha256"):
            raise ArtifactError(f"{kind} folder {folder}: {rel} is corrupt (sha256 differs from {COMPLETE}); "
                                f"{hint}")
    if missing:
        raise ArtifactError(f"{kind} folder {folder} is incomplete or mixed: {', '.join(sorted(set(missing)))} "
                            f"missing or not listed in {COMPLETE}; {hint}")
    return marker
