"""The held-out protocol every stage shares: which rows are test, fit and validation, and the model's id index.

``train``, ``evaluate`` and the benchmarks all call :func:`split`, so a run is always judged on rows it never saw:
the test rows come from :func:`geotower.ingest.split.holdout_split` (seed), the validation rows are carved from the
remaining train rows by the same function with ``seed + 1``. :func:`id_index` fixes the model's index spaces: every
dataset item (dataset order) and the users with >= 1 train positive (sorted).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from geotower import schema as S
from geotower.config import RunConfig
from geotower.ingest.dataset import Dataset
from geotower.ingest.split import holdout_split

__all__ = ["IdIndex", "SplitRows", "carve_validation", "id_index", "known_users", "pair_csr", "split"]


@dataclass(frozen=True)
class SplitRows:
    """Row subsets: ``train`` (all non-test rows) = ``fit`` (trained on) + ``validation`` (early stopping)."""

    test: pd.DataFrame
    train: pd.DataFrame
    fit: pd.DataFrame
    validation: pd.DataFrame
    info: dict[str, Any]  # how the cuts were made (recorded in the manifest)

    @property
    def n_test(self) -> int:
        return len(self.test)


def carve_validation(train: pd.DataFrame, cfg: RunConfig) -> tuple[pd.DataFrame, pd.DataFrame, Any]:
    """(fit, validation, the split) of the train rows: ``holdout_split`` with ``train.val_fraction`` and seed + 1."""
    val_split = holdout_split(train, cfg.train.val_fraction, cfg.seed + 1)
    return (train.iloc[val_split.train].reset_index(drop=True), train.iloc[val_split.test].reset_index(drop=True),
            val_split)


def split(ds: Dataset, cfg: RunConfig) -> SplitRows:
    """The held-out test rows (``eval.test_fraction``, seed), then validation carved from the rest."""
    test_split = holdout_split(ds.interactions, cfg.eval.test_fraction, cfg.seed)
    inter = ds.interactions
    train = inter.iloc[test_split.train].reset_index(drop=True)
    fit, validation, val_split = carve_validation(train, cfg)
    info = {"method": test_split.method, "cutoff": test_split.cutoff, "test_fraction": cfg.eval.test_fraction,
            "val_method": val_split.method, "val_cutoff": val_split.cutoff, "val_fraction": cfg.train.val_fraction}
    return SplitRows(inter.iloc[test_split.test].reset_index(drop=True), train, fit, validation, info)


def known_users(ds: Dataset) -> set[str]:
    """Every user the dataset knows: in the interactions or in the users table."""
    users = set(ds.interactions[S.USER_ID].unique())  # the distinct values only go through Python
    if ds.users is not None:
        users |= set(ds.users[S.USER_ID].unique())
    return users


def pair_csr(u: np.ndarray, i: np.ndarray, shape: tuple[int, int], values: np.ndarray | None = None
             ) -> sp.csr_matrix:
    """(n_users, n_items) CSR of index pairs, pairs with a -1 dropped, duplicates summed; binary without values."""
    ok = (u >= 0) & (i >= 0)
    data = np.ones(int(ok.sum()), np.float32) if values is None else np.asarray(values)[ok].astype(np.float32)
    m = sp.csr_matrix((data, (u[ok], i[ok])), shape=shape)
    m.sum_duplicates()
    if values is None:
        m.data[:] = 1.0
    return m


@dataclass(frozen=True)
class IdIndex:
    """Model index spaces: ``items`` (every dataset item) and ``users`` (>= 1 train positive), str arrays."""

    items: np.ndarray
    users: np.ndarray
    cold_users: int  # known users outside the index (no train positive)

    @cached_property
    def _item_lookup(self) -> pd.Index:
        return pd.Index(self.items)

    @cached_property
    def _user_lookup(self) -> pd.Index:
        return pd.Index(self.users)

    def item_index(self, rows: pd.DataFrame) -> np.ndarray:
        return np.asarray(self._item_lookup.get_indexer(rows[S.ITEM_ID]), dtype=np.int64)

    def user_index(self, rows: pd.DataFrame) -> np.ndarray:
        """-1 for users outside the index (no train positives)."""
        return np.asarray(self._user_lookup.get_indexer(rows[S.USER_ID]), dtype=np.int64)

    def csr(self, rows: pd.DataFrame, values: np.ndarray | None = None) -> sp.csr_matrix:
        """(n_users, n_items) CSR of the rows' pairs (see :func:`pair_csr`); rows of unindexed users dropped."""
        return pair_csr(self.user_index(rows), self.item_index(rows), (len(self.users), len(self.items)), values)


def id_index(ds: Dataset, train: pd.DataFrame) -> IdIndex:
    """The index of a run trained on ``train``: users with a train positive, sorted; every item, dataset order."""
    users = np.unique(train.loc[train[S.POSITIVE], S.USER_ID].to_numpy().astype(str))
    return IdIndex(ds.items[S.ITEM_ID].to_numpy().astype(str), users, len(known_users(ds)) - len(users))
