"""The run folder's layout (:class:`RunLayout`, every path) and its versioned manifest (:class:`RunManifest`).

``docs/run-folder.md`` describes each file; ``write_manifest`` records config, data fingerprint and library versions
beside a run's outputs and ``read_manifest`` reads them back typed.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from geotower.artifacts.files import read_json, write_json
from geotower.artifacts.folders import COMPLETE
from geotower.errors import ArtifactError

MANIFEST = "manifest.json"
CONFIG_JSON = "config.json"
MANIFEST_FORMAT = 2


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
