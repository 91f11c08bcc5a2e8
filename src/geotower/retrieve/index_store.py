"""A run's saved index: ``index.faiss`` (FAISS kinds only) beside ``index.json``, checked against the embeddings.

The index is serialised with ``faiss.serialize_index`` and written through :mod:`geotower.artifacts` (atomic, no
pickle); ``index.json`` records the kind, parameters, the measured recall@10 against exact search and a hash of the
embeddings it was built from, so a stale index (the run was retrained since) is refused, not silently used.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from geotower import artifacts
from geotower.artifacts import RunLayout
from geotower.errors import ArtifactError
from geotower.retrieve.index import ExactIndex, FaissIndex, FloatArray, Retriever, import_faiss

INDEX_JSON, INDEX_FILE = RunLayout.INDEX_JSON, RunLayout.INDEX_FILE


def embeddings_sha256(emb: FloatArray) -> str:
    """Hash of the embedding bytes an index was built from; detects a stale index after retraining."""
    return hashlib.sha256(np.ascontiguousarray(emb, dtype=np.float32).tobytes()).hexdigest()


def save_index(run_dir: str | Path, index: Retriever, meta: dict[str, Any]) -> Path:
    """Write ``index.faiss`` (FAISS kinds only) and ``index.json`` atomically; returns the JSON path."""
    run_dir = Path(run_dir)
    if isinstance(index, FaissIndex):
        faiss = import_faiss()
        artifacts.write_bytes(run_dir / INDEX_FILE, faiss.serialize_index(index.index).tobytes())
        meta = {**meta, "params": index.params, "file": INDEX_FILE}
    elif (run_dir / INDEX_FILE).exists():
        (run_dir / INDEX_FILE).unlink()  # a flat index keeps no file; drop a stale one from an earlier build
    return artifacts.write_json(run_dir / INDEX_JSON, {"kind": index.kind, "n_items": index.n_items, **meta})


def read_index_meta(run_dir: str | Path) -> dict[str, Any] | None:
    """``index.json`` of a run, or None when no index was built yet."""
    path = Path(run_dir) / INDEX_JSON
    return artifacts.read_json(path) if path.exists() else None


def load_index(run_dir: str | Path, emb: FloatArray) -> tuple[Retriever, dict[str, Any]]:
    """Load the saved index of a run and check it was built from exactly ``emb``.

    Raises:
        ArtifactError: no index, unreadable file, or an index built from other embeddings (rerun ``geotower index``).
    """
    run_dir = Path(run_dir)
    meta = read_index_meta(run_dir)
    if meta is None:
        raise ArtifactError(f"no index in {run_dir}; run: geotower index {run_dir}")
    if meta.get("emb_sha256") != embeddings_sha256(emb) or meta.get("n_items") != len(emb):
        raise ArtifactError(f"{run_dir / INDEX_JSON} was built from other item embeddings ({meta.get('n_items')} "
                            f"items, now {len(emb)}); rebuild it: geotower index {run_dir}")
    if meta["kind"] == "flat":
        return ExactIndex(emb), meta
    faiss = import_faiss()
    try:
        raw = np.frombuffer((run_dir / INDEX_FILE).read_bytes(), dtype=np.uint8)
        index = faiss.deserialize_index(raw)
    except (OSError, RuntimeError) as exc:
        raise ArtifactError(f"cannot read {run_dir / INDEX_FILE}: {exc}; rebuild it: geotower index {run_dir}"
                            ) from None
    params = meta.get("params") or {}
    width = emb.shape[1] + (1 if meta["kind"] == "hnsw" and "max_norm" in params else 0)  # the L2 reduction's column
    if index.ntotal != len(emb) or index.d != width:
        raise ArtifactError(f"{run_dir / INDEX_FILE} holds {index.ntotal} x {index.d} vectors, expected "
                            f"{len(emb)} x {width}; rebuild it: geotower index {run_dir}")
    return FaissIndex(meta["kind"], emb.shape[1], params, index), meta
