"""Sparse rows for the metric tests: ``csr([[1, 3], []], 4)`` is two users, the first with items 1 and 3."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def csr(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    indptr = np.cumsum([0] + [len(r) for r in rows])
    indices = np.array([i for r in rows for i in r], dtype=np.int64)
    return sp.csr_matrix((np.ones(len(indices), dtype=np.float32), indices, indptr), shape=(len(rows), n_items))
