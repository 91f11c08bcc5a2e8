"""Atomic folders: a run or dataset folder is written whole or not at all, and checked when it is read.

Every command writes into a sibling staging folder ``.<name>.partial``, writes ``complete.json`` (each file's size
and sha256) last, and swaps the staging folder in with one rename (Linux ``renameat2(RENAME_EXCHANGE)``; elsewhere
two renames that :func:`recover_folder` completes or undoes). Loaders call :func:`verify_folder`, so a mixed,
truncated or flipped folder is refused with a message that says how to recover (docs/reliability.md).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from geotower.artifacts.files import file_sha256, write_json
from geotower.errors import ArtifactError, ConfigError

COMPLETE = "complete.json"
MARKER_FORMAT = 1


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
