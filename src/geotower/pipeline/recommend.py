"""Composition behind ``geotower index`` and ``geotower recommend``: load a run, build or grow its index, answer.

``build_run_index`` indexes the run's item embeddings (exact below ``serve.exact_max_items``, HNSW/IVF above) and
records the measured recall@10 against exact search in ``RUN/index.json``. ``add_items`` embeds places that exist
only as features with the item tower and appends them to the catalog and the index. ``recommend_run`` answers one
query. No printing here; the CLI shows the returned dataclasses.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from geotower import artifacts
from geotower import schema as S
from geotower.errors import DataError
from geotower.retrieve.catalog import BundleLike, load_catalog, save_added
from geotower.retrieve.index import FaissIndex, Retriever
from geotower.retrieve.index_build import build_index, choose_kind, measure_recall
from geotower.retrieve.index_store import embeddings_sha256, load_index, read_index_meta, save_index
from geotower.retrieve.recommender import Query, Recommender, open_recommender

Loader = Callable[[Path], BundleLike]


@dataclass(frozen=True)
class IndexResult:
    """What ``geotower index`` built."""

    run_dir: Path
    kind: str
    n_items: int
    n_added: int
    recall_at_10: float
    seconds: float


@dataclass(frozen=True)
class RecommendResult:
    """Ranked places (``item_id, score, name, lat, lon, distance_km``) and how they were ranked."""

    items: list[dict[str, Any]]
    mode: str
    note: str | None = None
    query: dict[str, Any] = field(default_factory=dict)


def _load(run_dir: Path, loader: Loader | None) -> BundleLike:
    if loader is not None:
        return loader(run_dir)
    from geotower.model.bundle import load_bundle

    return load_bundle(run_dir, verify_data=True)


def _finish(run_dir: Path, index: Retriever, emb: np.ndarray, queries: np.ndarray, n_added: int,
            seed: int, t0: float) -> IndexResult:
    """Measure recall@10 vs exact, then save the index with the hash of the embeddings it holds."""
    recall = measure_recall(index, emb, queries if len(queries) else emb, k=10, seed=seed)
    save_index(run_dir, index, {"dim": int(emb.shape[1]), "recall_at_10": recall, "recall_queries":
                                int(min(len(queries) or len(emb), 1000)), "emb_sha256": embeddings_sha256(emb),
                                "n_added": n_added})
    return IndexResult(run_dir, index.kind, index.n_items, n_added, recall, time.perf_counter() - t0)


def build_run_index(run_dir: str | Path, kind: str = "auto", exact_max_items: int = 50_000, seed: int = 0,
                    loader: Loader | None = None) -> IndexResult:
    """Build and save the index over every catalog item of a run (trained + added).

    Raises:
        ArtifactError: the run's artifacts are missing or do not match their data.
        ConfigError: unknown index kind.
    """
    run_dir = Path(run_dir)
    t0 = time.perf_counter()
    choose_kind(kind, 0, exact_max_items)  # an unknown kind fails before the (slow) bundle load
    bundle = _load(run_dir, loader)
    catalog = load_catalog(bundle, run_dir)
    users = np.asarray(bundle.user_emb, np.float32)
    index = build_index(catalog.emb, kind, exact_max_items, seed, queries=users)
    with artifacts.staged_folder(run_dir, "run", keep_existing=True) as stage:  # old or new index, never half
        res = _finish(stage, index, catalog.emb, users,
                      n_added=len(catalog.item_ids) - catalog.n_trained, seed=seed, t0=t0)
    return replace(res, run_dir=run_dir)


def _read_new_items(path: Path, known: set[str]) -> pd.DataFrame:
    """The items table to add: ``item_id`` required, ids new and unique, coordinates in range."""
    table = artifacts.read_table(path, dtype={S.ITEM_ID: str})
    if S.ITEM_ID not in table.columns:
        raise DataError(f"missing required column; found: {', '.join(map(str, table.columns))}", path=path,
                        column=S.ITEM_ID)
    ids = table[S.ITEM_ID].astype(str)
    clash = ids.isin(known).to_numpy() | ids.duplicated().to_numpy() | table[S.ITEM_ID].isna().to_numpy()
    if clash.any():
        i = int(np.flatnonzero(clash)[0])
        raise DataError(f"item id {ids.iloc[i]!r} is empty, repeated, or already in the run ({int(clash.sum())} "
                        "such rows)", path=path, row=i, column=S.ITEM_ID)
    for col, bound in ((S.LAT, 90.0), (S.LON, 180.0)):
        if col in table.columns:
            values = pd.to_numeric(table[col], errors="coerce").to_numpy(dtype=float)
            bad = ~np.isfinite(values) | (np.abs(values) > bound)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise DataError(f"must be a number in [-{bound:g}, {bound:g}]", path=path, row=i, column=col)
    return table


def add_items(run_dir: str | Path, items_path: str | Path, exact_max_items: int = 50_000, seed: int = 0,
              loader: Loader | None = None) -> IndexResult:
    """Embed feature-only items with the item tower and append them to the run's catalog and index.

    The existing index is grown in place (FAISS ``add``), not rebuilt; without one, a new index is built.

    Raises:
        DataError: bad items file (named file, row and column).
        ArtifactError: feature columns differ from training (from ``embed_new_items``) or a stale index.
    """
    run_dir, items_path = Path(run_dir), Path(items_path)
    t0 = time.perf_counter()
    bundle = _load(run_dir, loader)
    before = load_catalog(bundle, run_dir)
    table = _read_new_items(items_path, set(before.item_ids.tolist()))
    try:
        new_emb = np.asarray(bundle.embed_new_items(table), dtype=np.float32)  # (m, d)
    except DataError as exc:  # name the file the bad row is in
        raise DataError(exc.message, path=exc.path or items_path, row=exc.row, column=exc.column) from None
    index = load_index(run_dir, before.emb)[0] if read_index_meta(run_dir) is not None else None
    with artifacts.staged_folder(run_dir, "run", keep_existing=True) as stage:  # items + index in one swap
        save_added(stage, table, new_emb)
        after = load_catalog(bundle, stage)
        if index is None:
            index = build_index(after.emb, "auto", exact_max_items, seed)
        elif isinstance(index, FaissIndex):
            index.add(new_emb)
        else:
            index = build_index(after.emb, "flat")
        res = _finish(stage, index, after.emb, np.asarray(bundle.user_emb, np.float32),
                      n_added=len(after.item_ids) - after.n_trained, seed=seed, t0=t0)
    return replace(res, run_dir=run_dir)


def recommend_run(run_dir: str | Path, query: Query, exact_max_items: int = 50_000,
                  loader: Loader | None = None, explain: bool = False) -> RecommendResult:
    """Answer one query over a run (loads the bundle and index; for many queries use the service)."""
    run_dir = Path(run_dir)
    rec = open_recommender(_load(run_dir, loader), run_dir, exact_max_items, explain=explain)
    return answer(rec, query, explain)


def answer(rec: Recommender, query: Query, explain: bool = False) -> RecommendResult:
    """Run one query on an open recommender and attach the public item fields (and ``reasons``)."""
    result = rec.recommend(query)
    items = rec.records(result, explain)
    return RecommendResult(items, result.mode, result.note,
                           {"user_id": query.user_id, "liked": list(query.liked), "k": query.k,
                            "near": None if query.near is None else list(query.near), "radius_km": query.radius_km})
