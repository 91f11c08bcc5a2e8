"""The trained run as files: save through ``geotower.artifacts``, load back with every check.

The only module of ``model/`` that touches files, and only through ``geotower.artifacts`` (atomic writes,
safetensors/JSON/parquet, never pickle). :func:`load_bundle` refuses a run whose data fingerprint no longer matches
its dataset folder or whose feature schema does not match its model, saying what differs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from geotower import artifacts
from geotower import schema as S
from geotower.config import RunConfig, from_dict
from geotower.errors import ArtifactError, DataError
from geotower.model.encoders import TableEncoder
from geotower.model.ensemble import TowerEnsemble, build_towers
from geotower.model.history import History
from geotower.model.spec import TowerSpec
from geotower.model.towers import TwoTower

MODEL_WEIGHTS, MODEL_JSON = "model.safetensors", "model.json"
FEATURES_JSON, FEATURES_ARRAYS = "features.json", "features.safetensors"
ITEMS, USERS = "items.parquet", "users.parquet"
ITEM_EMB, USER_EMB = "item_embeddings.safetensors", "user_embeddings.safetensors"
TRAIN_SEEN, POPULARITY = "train_seen.safetensors", "popularity.safetensors"


@dataclass
class BundleParts:
    """What the training pipeline hands to :func:`save_bundle`."""

    model: TwoTower | TowerEnsemble
    item_encoder: TableEncoder
    user_encoder: TableEncoder | None
    items: pd.DataFrame  # item_id [, name, lat, lon] in model item order
    user_ids: np.ndarray  # (n_users,) str, model user order
    item_emb: np.ndarray  # (n_items, d) float32
    user_emb: np.ndarray  # (n_users, d) float32, temperature baked in
    seen: sp.csr_matrix  # (n_users, n_items)
    popularity: np.ndarray  # (n_items,)


def save_bundle(run_dir: str | Path, parts: BundleParts) -> None:
    """Write every bundle file (config and manifest are written by the pipeline)."""
    out = Path(run_dir)
    model = parts.model
    artifacts.save_arrays(out / MODEL_WEIGHTS, {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()})
    artifacts.write_json(out / MODEL_JSON, model.spec.to_dict())
    meta: dict[str, Any] = {"items": None, "users": None}
    arrays = {"data.item_dense": model.item_dense.numpy(), "data.item_cells": model.item_cells.numpy(),
              "data.item_known": model.item_known.numpy()}
    for name, enc in (("items", parts.item_encoder), ("users", parts.user_encoder)):
        if enc is not None:
            meta[name], enc_arrays = enc.state()
            arrays.update({f"{name}.{k}": v for k, v in enc_arrays.items()})
    artifacts.write_json(out / FEATURES_JSON, meta)
    artifacts.save_arrays(out / FEATURES_ARRAYS, arrays)
    artifacts.write_table(out / ITEMS, parts.items.reset_index(drop=True))
    artifacts.write_table(out / USERS, pd.DataFrame({S.USER_ID: parts.user_ids.astype(str)}))
    artifacts.save_arrays(out / ITEM_EMB, {"embeddings": parts.item_emb.astype(np.float32)})
    artifacts.save_arrays(out / USER_EMB, {"embeddings": parts.user_emb.astype(np.float32)})
    seen = parts.seen.tocsr()
    artifacts.save_arrays(out / TRAIN_SEEN, {"indptr": seen.indptr.astype(np.int64),
                                             "indices": seen.indices.astype(np.int64),
                                             "shape": np.asarray(seen.shape, dtype=np.int64)})
    artifacts.save_arrays(out / POPULARITY, {"popularity": parts.popularity.astype(np.float32)})


@dataclass
class ModelBundle:
    """A loaded run: embeddings for retrieval plus the towers and encoders for cold-start users and items."""

    run_dir: Path
    config: RunConfig
    item_ids: np.ndarray
    item_emb: np.ndarray
    user_ids: np.ndarray
    user_emb: np.ndarray
    items: pd.DataFrame
    seen: sp.csr_matrix
    popularity: np.ndarray
    model: TwoTower | TowerEnsemble = field(repr=False)
    item_encoder: TableEncoder = field(repr=False)
    manifest: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._users = pd.Index(self.user_ids)
        self._items = pd.Index(self.item_ids)

    def user_index(self, user_id: str) -> int | None:
        """Row of ``user_id`` in ``user_emb``, or None for a user without train positives."""
        pos = self._users.get_indexer([str(user_id)])[0]
        return None if pos < 0 else int(pos)

    def item_index(self, item_ids: Sequence[str]) -> np.ndarray:
        """Rows of ``item_ids`` in ``item_emb``; raises DataError naming the unknown ids."""
        ids = [str(i) for i in item_ids]
        pos: np.ndarray = self._items.get_indexer(ids)
        if (pos < 0).any():
            unknown = [i for i, p in zip(ids, pos, strict=True) if p < 0]
            raise DataError(f"unknown item id(s) {unknown[:10]}{' ...' if len(unknown) > 10 else ''} "
                            f"({len(unknown)} of {len(ids)})", column=S.ITEM_ID)
        return pos.astype(np.int64)

    def embed_liked(self, liked_item_ids: Sequence[str]) -> np.ndarray:
        """(d,) embedding of a new user from the items they like, through the user tower (no user ID/features)."""
        if len(liked_item_ids) == 0:
            raise DataError("at least one liked item is needed to embed a new user", column=S.ITEM_ID)
        idx = torch.from_numpy(np.unique(self.item_index(liked_item_ids)))
        hist = History(idx, torch.zeros(1, dtype=torch.long), torch.ones(len(idx)), torch.tensor([float(len(idx))]))
        user_dense = torch.zeros(1, self.model.spec.user_dense_dim)
        with torch.no_grad():
            u = self.model.new_user_embeddings(hist, user_dense)  # (1, d)
        return u[0].numpy().astype(np.float32)

    def embed_new_items(self, items: pd.DataFrame) -> np.ndarray:
        """(n, d) embeddings of places from their feature columns alone (same columns as training)."""
        self.item_encoder.check_columns(items)
        items = _numeric_features(items, list(getattr(self.item_encoder, "numeric_", [])))
        enc = self.item_encoder.transform(items)
        with torch.no_grad():
            v = self.model.new_item_embeddings(torch.from_numpy(enc.dense), torch.from_numpy(enc.cells))
        return v.numpy().astype(np.float32)


_DATA_FILES = {f"{stem}{suffix}" for stem in (S.INTERACTIONS_STEM, S.ITEMS_STEM, S.USERS_STEM)
               for suffix in S.TABLE_SUFFIXES} | {S.DATASET_TOML}


def _numeric_features(items: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The numeric feature columns of new items as numbers; a text value is a DataError naming row and column."""
    items = items.copy()
    for col in columns:
        values = pd.to_numeric(items[col], errors="coerce")
        bad = (values.isna() & items[col].notna()).to_numpy() | np.isinf(values.to_numpy(dtype=float))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(f"must be a finite number (a numeric feature in training), got {items[col].iloc[i]!r}",
                            row=i, column=col)
        items[col] = values.astype(float)
    return items


def _verify_data(manifest: dict[str, Any]) -> None:
    """Recompute the dataset files' hashes; ArtifactError listing what changed since training.

    Only the dataset contract's own file names are hashed (a manifest edited to name any other file, or a path,
    is refused): the manifest never makes geotower read an arbitrary file.
    """
    folder = Path(manifest.get("dataset_dir") or "")
    expected = manifest.get("data", {})
    if not manifest.get("dataset_dir") or not folder.is_dir() or not expected:
        return
    entries = expected.get("files", {})
    bad = [v.get("name") if isinstance(v, dict) else v for v in entries.values()
           if not isinstance(v, dict) or v.get("name") not in _DATA_FILES]
    if bad:
        raise ArtifactError(f"manifest.json names dataset files outside the dataset contract: {bad}; "
                            "the run folder was edited: retrain")
    files = {k: folder / v["name"] for k, v in entries.items()}
    present = {k: p for k, p in files.items() if p.exists()}
    actual = artifacts.fingerprint(present, expected.get("rows", {}))
    diffs = artifacts.fingerprint_diff(expected, actual)
    if diffs:
        raise ArtifactError(f"dataset {folder} changed since training: " + "; ".join(diffs) +
                            " (retrain, or load with verify_data=False)")


def _check_schema(spec: TowerSpec, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """The feature pipeline must produce what the towers were built for."""
    items = meta["items"]
    dense, cells = arrays["data.item_dense"], arrays["data.item_cells"]
    problems = []
    if items["dense_dim"] != spec.item_dense_dim or dense.shape[1] != spec.item_dense_dim:
        problems.append(f"item feature width {items['dense_dim']} but the model expects {spec.item_dense_dim}")
    if dense.shape[0] != spec.n_items:
        problems.append(f"{dense.shape[0]} item feature rows but the model has {spec.n_items} items")
    geo_levels = items["geo"]["levels"] if items.get("geo") else 0
    if geo_levels != len(spec.cell_vocab_sizes) or cells.shape[1] != geo_levels:
        problems.append(f"{geo_levels} geo grid levels but the model expects {len(spec.cell_vocab_sizes)}")
    users = meta.get("users")
    user_dim = users["dense_dim"] if users else 0
    if user_dim != spec.user_dense_dim:
        problems.append(f"user feature width {user_dim} but the model expects {spec.user_dense_dim}")
    if problems:
        raise ArtifactError(f"{FEATURES_JSON} does not match {MODEL_JSON}: " + "; ".join(problems))


def _load_model(run: Path) -> tuple[TwoTower | TowerEnsemble, TableEncoder]:
    spec = TowerSpec.from_dict(artifacts.read_json(run / MODEL_JSON))
    meta = artifacts.read_json(run / FEATURES_JSON)
    arrays = artifacts.load_arrays(run / FEATURES_ARRAYS)
    _check_schema(spec, meta, arrays)
    enc = TableEncoder.from_state(meta["items"], _prefixed(arrays, "items."))
    t = torch.from_numpy
    model = build_towers(spec, t(arrays["data.item_dense"]), t(arrays["data.item_cells"]),
                         torch.zeros(spec.n_users, spec.user_dense_dim), t(arrays["data.item_known"]))
    artifacts.check_finite(run / FEATURES_ARRAYS, arrays)
    raw_weights = artifacts.load_arrays(run / MODEL_WEIGHTS)
    artifacts.check_finite(run / MODEL_WEIGHTS, raw_weights)
    weights = {k: t(v.copy()) for k, v in raw_weights.items()}
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise ArtifactError(f"{run / MODEL_WEIGHTS} does not match {MODEL_JSON}: {exc}") from None
    return model.eval(), enc


def _prefixed(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}


def load_bundle(run_dir: str | Path, verify_data: bool = True) -> ModelBundle:
    """Load a run directory written by ``geotower train``.

    Args:
        run_dir: the run folder.
        verify_data: recompute the recorded dataset folder's fingerprint (when it still exists) and refuse a change.

    Raises:
        ArtifactError: missing/corrupt files, changed data, or features that do not match the model.
    """
    run = Path(run_dir)
    layout = artifacts.RunLayout(run)
    if not run.is_dir():
        partial = artifacts.staging_path(run)
        hint = (f"; an interrupted train left {partial}: continue it with --resume" if partial.is_dir() else "")
        raise ArtifactError(f"run directory {run} does not exist{hint}")
    artifacts.verify_folder(run, "run", layout.REQUIRED, layout.OPTIONAL, layout.SIZE_ONLY)
    manifest = artifacts.read_manifest(run).to_dict()
    config = from_dict(artifacts.read_json(run / artifacts.CONFIG_JSON))
    if verify_data:
        _verify_data(manifest)
    model, enc = _load_model(run)
    items = artifacts.read_table(run / ITEMS)
    items[S.ITEM_ID] = items[S.ITEM_ID].astype(str)
    user_ids = artifacts.read_table(run / USERS)[S.USER_ID].astype(str).to_numpy()
    item_emb = _array(run / ITEM_EMB, "embeddings")
    user_emb = _array(run / USER_EMB, "embeddings")
    popularity = _array(run / POPULARITY, "popularity")
    if item_emb.shape[0] != len(items) or user_emb.shape[0] != len(user_ids) or len(popularity) != len(items):
        raise ArtifactError(f"{run}: embeddings, ids and popularity disagree in size (items {len(items)} vs "
                            f"{item_emb.shape[0]}, users {len(user_ids)} vs {user_emb.shape[0]})")
    seen = _seen_matrix(run / TRAIN_SEEN, (len(user_ids), len(items)))
    return ModelBundle(run, config, item_ids=items[S.ITEM_ID].to_numpy(), item_emb=item_emb, user_ids=user_ids,
                       user_emb=user_emb, items=items, seen=seen, popularity=popularity, model=model,
                       item_encoder=enc, manifest=manifest)


def _array(path: Path, key: str) -> np.ndarray:
    """One named, finite array of a safetensors file."""
    arrays = artifacts.load_arrays(path)
    if key not in arrays:
        raise ArtifactError(f"{path} has no array {key!r}; retrain")
    artifacts.check_finite(path, {key: arrays[key]})
    return arrays[key]


def _seen_matrix(path: Path, shape: tuple[int, int]) -> sp.csr_matrix:
    """The train-seen CSR matrix, with its structure checked (indices index the catalog, indptr is monotone)."""
    arrays = artifacts.load_arrays(path)
    indptr, indices, stored = arrays.get("indptr"), arrays.get("indices"), arrays.get("shape")
    if indptr is None or indices is None or stored is None or not (
            tuple(int(v) for v in stored) == shape and indptr.ndim == indices.ndim == 1
            and len(indptr) == shape[0] + 1 and int(indptr[0]) == 0 and int(indptr[-1]) == len(indices)
            and bool((np.diff(indptr) >= 0).all())
            and (len(indices) == 0 or (int(indices.min()) >= 0 and int(indices.max()) < shape[1]))):
        raise ArtifactError(f"{path} is corrupt or does not match the run's {shape[0]} users x {shape[1]} items; "
                            "retrain")
    return sp.csr_matrix((np.ones(len(indices), dtype=np.float32), indices, indptr), shape=shape)
