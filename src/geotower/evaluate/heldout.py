"""The evaluation index space and the matrices every model is judged on (pure: frames in, CSR matrices out).

Ground truth per user is the test positives they had not seen (any rating) in train; only warm users (>= 1 train
positive and >= 1 ground-truth item) are scored, the cold ones are counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from geotower import schema as S
from geotower.evaluate.metrics import block_batch_size, ground_truth
from geotower.ingest.protocol import pair_csr

__all__ = ["HeldOut", "build_heldout", "positives"]


@dataclass
class HeldOut:
    """The evaluation index space (all dataset users x the run's items) and the matrices every model is judged on."""

    user_ids: np.ndarray  # (n_users,) str
    item_ids: np.ndarray  # (n_items,) str, the run's embedding row order
    train_pos: sp.csr_matrix  # (n_users, n_items) positive train weights (what baselines fit)
    seen: sp.csr_matrix  # (n_users, n_items) train rows of any rating (masked)
    relevant: sp.csr_matrix  # (n_users, n_items) test positives
    users: np.ndarray  # warm users with ground truth: the evaluated set
    cold_users: int

    @property
    def batch_size(self) -> int:
        return block_batch_size(len(self.item_ids))

    def matrix(self, rows: pd.DataFrame, values: np.ndarray | None = None) -> sp.csr_matrix:
        """(n_users, n_items) CSR of the rows' pairs, duplicates summed; binary when ``values`` is None."""
        u = np.asarray(pd.Index(self.user_ids).get_indexer(rows[S.USER_ID]))
        i = np.asarray(pd.Index(self.item_ids).get_indexer(rows[S.ITEM_ID]))
        return pair_csr(u, i, (len(self.user_ids), len(self.item_ids)), values)


def positives(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.loc[rows[S.POSITIVE].to_numpy()]


def build_heldout(train: pd.DataFrame, test: pd.DataFrame, user_ids: np.ndarray, item_ids: np.ndarray) -> HeldOut:
    """Matrices and the warm/cold user sets for one train/test pair (pure)."""
    empty = sp.csr_matrix((len(user_ids), len(item_ids)), dtype=np.float32)
    proto = HeldOut(np.asarray(user_ids, str), np.asarray(item_ids, str), train_pos=empty, seen=empty,
                    relevant=empty, users=np.empty(0, np.int64), cold_users=0)
    pos = positives(train)
    proto.train_pos = proto.matrix(pos, pos[S.WEIGHT].to_numpy())
    proto.seen = proto.matrix(train)
    proto.relevant = proto.matrix(positives(test))
    has_truth = np.diff(ground_truth(proto.relevant, proto.seen).indptr) > 0
    warm = np.diff(proto.train_pos.indptr) > 0
    proto.users = np.flatnonzero(has_truth & warm).astype(np.int64)
    proto.cold_users = int((has_truth & ~warm).sum())
    return proto
