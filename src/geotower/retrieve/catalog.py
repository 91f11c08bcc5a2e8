"""The catalog a run can rank: the bundle's trained items, then items added later from features only.

``geotower index RUN --add`` embeds new places with the item tower and appends them to ``added_items.*`` in the run
folder (:func:`save_added`); :func:`load_catalog` puts both parts in embedding-row order with names, coordinates and
popularity, which is all the :class:`~geotower.retrieve.recommender.Recommender` needs to rank and describe a row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp

from geotower import artifacts
from geotower import schema as S
from geotower.artifacts import RunLayout
from geotower.errors import DataError
from geotower.retrieve.index import FloatArray

ADDED_ITEMS, ADDED_EMB = RunLayout.ADDED_ITEMS, RunLayout.ADDED_EMB


class BundleLike(Protocol):
    """The parts of ``geotower.model.bundle.ModelBundle`` (written by ``save_bundle``) that recommendation needs."""

    item_ids: np.ndarray
    item_emb: np.ndarray
    user_ids: np.ndarray
    user_emb: np.ndarray
    items: pd.DataFrame
    seen: sp.csr_matrix
    popularity: np.ndarray

    def embed_liked(self, liked_item_ids: Sequence[str]) -> np.ndarray: ...

    def embed_new_items(self, items: pd.DataFrame) -> np.ndarray: ...


@dataclass
class Catalog:
    """All rankable items in embedding-row order: the bundle's items, then items added from features only."""

    item_ids: np.ndarray  # (n,) str
    emb: FloatArray  # (n, d)
    names: np.ndarray | None  # (n,) object, None when the data has no names
    lats: npt.NDArray[np.float64]  # (n,) NaN where unknown
    lons: npt.NDArray[np.float64]
    popularity: npt.NDArray[np.float64]  # (n,) train positive counts; 0 for added items
    n_trained: int  # rows below this come from the bundle


def _column(df: pd.DataFrame, col: str, n: int) -> npt.NDArray[np.float64]:
    return df[col].to_numpy(dtype=np.float64) if col in df.columns else np.full(n, np.nan)


def _names(df: pd.DataFrame) -> np.ndarray | None:
    """Names as str objects (None where missing), whatever dtype the table stored them in."""
    if S.NAME not in df.columns:
        return None
    names = df[S.NAME]
    return with_none(names.astype(str).to_numpy(), names.notna().to_numpy())


def with_none(values: np.ndarray, known: npt.NDArray[np.bool_]) -> npt.NDArray[np.object_]:
    """``values`` as Python objects with None where not ``known`` (``np.where(known, values, None)``)."""
    out: npt.NDArray[np.object_] = values.astype(object)
    out[~known] = None
    return out


def load_catalog(bundle: BundleLike, run_dir: str | Path) -> Catalog:
    """The bundle's items plus ``added_items.*`` of the run (written by ``geotower index RUN --add``)."""
    items, n = bundle.items, len(bundle.item_ids)
    emb = np.asarray(bundle.item_emb, dtype=np.float32)
    ids, names = np.asarray(bundle.item_ids).astype(str), _names(items)
    lats, lons = _column(items, S.LAT, n), _column(items, S.LON, n)
    pop = np.asarray(bundle.popularity, dtype=np.float64)
    added, added_emb = read_added(run_dir)
    if added is not None and added_emb is not None:
        m = len(added)
        ids = np.concatenate([ids, added[S.ITEM_ID].astype(str).to_numpy()])
        emb = np.concatenate([emb, added_emb])
        extra = _names(added)
        if names is not None or extra is not None:
            names = np.concatenate([names if names is not None else np.full(n, None, dtype=object),
                                    extra if extra is not None else np.full(m, None, dtype=object)])
        lats = np.concatenate([lats, _column(added, S.LAT, m)])
        lons = np.concatenate([lons, _column(added, S.LON, m)])
        pop = np.concatenate([pop, np.zeros(m)])
    return Catalog(ids, emb, names, lats, lons, popularity=pop, n_trained=n)


def read_added(run_dir: str | Path) -> tuple[pd.DataFrame | None, FloatArray | None]:
    """Items added to a run from features only, with their item-tower embeddings (None, None when there are none)."""
    run_dir = Path(run_dir)
    if not (run_dir / ADDED_ITEMS).exists():
        return None, None
    table = artifacts.read_table(run_dir / ADDED_ITEMS, dtype={S.ITEM_ID: str})
    emb = artifacts.load_arrays(run_dir / ADDED_EMB)["emb"]
    if len(emb) != len(table):
        raise DataError(f"{len(table)} added items but {len(emb)} embeddings; re-add them", path=run_dir / ADDED_EMB)
    return table, emb.astype(np.float32)


def save_added(run_dir: str | Path, table: pd.DataFrame, emb: FloatArray) -> None:
    """Append items (item_id [, name, lat, lon]) and their embeddings to the run's added-items store."""
    keep = [c for c in (S.ITEM_ID, S.NAME, S.LAT, S.LON) if c in table.columns]
    old, old_emb = read_added(run_dir)
    table = table[keep].astype({S.ITEM_ID: str})
    if old is not None and old_emb is not None:
        table, emb = pd.concat([old, table], ignore_index=True), np.concatenate([old_emb, emb])
    artifacts.save_arrays(Path(run_dir) / ADDED_EMB, {"emb": np.asarray(emb, dtype=np.float32)})
    artifacts.write_table(Path(run_dir) / ADDED_ITEMS, table)
