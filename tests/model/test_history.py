"""CSR helpers of geotower.model.history against plain-Python references."""

from __future__ import annotations

import torch

from geotower.model.history import BatchUsers, csr_rows


def _reference(indptr: list[int], rows: list[int]) -> tuple[list[int], list[int]]:
    bag, pos = [], []
    for k, r in enumerate(rows):
        for p in range(indptr[r], indptr[r + 1]):
            bag.append(k)
            pos.append(p)
    return bag, pos


def test_csr_rows_matches_a_loop_with_empty_and_repeated_rows() -> None:
    gen = torch.Generator().manual_seed(3)
    lengths = torch.randint(0, 5, (40,), generator=gen)
    lengths[[0, 7, 39]] = 0  # empty rows, the first and the last included
    indptr = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(lengths, 0)])
    rows = torch.tensor([39, 0, 5, 5, 7, 12, 38, 1])
    bag, pos = csr_rows(indptr, rows)
    assert (bag.tolist(), pos.tolist()) == _reference(indptr.tolist(), rows.tolist())
    empty_bag, empty_pos = csr_rows(indptr, torch.tensor([0, 7], dtype=torch.long))
    assert empty_bag.numel() == 0 and empty_pos.numel() == 0


def test_batch_users_walks_each_distinct_user_once() -> None:
    indptr = torch.tensor([0, 2, 2, 5])
    who = BatchUsers.of(indptr, torch.tensor([2, 0, 2, 2]))
    assert who.uniq.tolist() == [0, 2] and who.rows.tolist() == [1, 0, 1, 1]
    assert who.bag.tolist() == [0, 0, 1, 1, 1] and who.pos.tolist() == [0, 1, 2, 3, 4]
