"""A user's history as a bag of items: the user tower pools the inputs of the items a user liked.

Bags are built per distinct user of a batch (a user with several rows is pooled once) and can leave each row's own
target out (leave-one-out), so training does not learn to find an item from itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class History:
    """Bags of history items, one bag per distinct user, plus which bag each output row uses.

    ``items`` (m,), ``offsets`` (u,) and raw ``weights`` (m,) define the bags; ``totals`` (u,) is each bag's
    weight sum. ``rows`` (b,) maps output rows to bags (None = one row per bag). Leave-one-out: row ``i`` drops
    ``exclude[i]`` whose weight in the bag is ``exclude_w[i]`` (0 when the item is not in the bag), by subtracting
    it from the bag sum, so a user's bag is pooled once per batch however many rows they have.

    With ``table_items`` (k,) set (:func:`localize`), ``items`` and ``exclude`` are positions in it instead of
    item indices: the towers then build their pooled table for those k distinct items only, not for the catalogue.
    """

    items: Tensor
    offsets: Tensor
    weights: Tensor
    totals: Tensor
    rows: Tensor | None = None
    exclude: Tensor | None = None
    exclude_w: Tensor | None = None
    table_items: Tensor | None = None

    def to(self, device: torch.device) -> History:
        """The same bags on ``device`` (batches are built on the CPU, the towers may train on a GPU)."""
        def move(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(device, non_blocking=True)

        return History(self.items.to(device), self.offsets.to(device), self.weights.to(device),
                       self.totals.to(device), rows=move(self.rows), exclude=move(self.exclude),
                       exclude_w=move(self.exclude_w), table_items=move(self.table_items))

    @property
    def n_rows(self) -> int:
        return len(self.offsets) if self.rows is None else len(self.rows)


def csr_rows(indptr: Tensor, rows: Tensor) -> tuple[Tensor, Tensor]:
    """Flatten CSR rows: (m,) position of each entry's row in ``rows`` and (m,) its index into the CSR data."""
    starts, counts = indptr[rows], indptr[rows + 1] - indptr[rows]  # (b,)
    bag = torch.repeat_interleave(torch.arange(len(rows)), counts)  # (m,)
    within = torch.arange(len(bag)) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    return bag, starts[bag] + within


def history_bags(indptr: Tensor, hist_items: Tensor, hist_weights: Tensor | None, users: Tensor,
                 exclude: Tensor | None = None, exclude_w: Tensor | None = None) -> History:
    """Each user's positive items as one bag (deduplicated over repeated users), optionally leave-one-out.

    Args:
        indptr, hist_items, hist_weights: CSR of positives per user (weights None = plain mean).
        users: (b,) user index of each output row.
        exclude: (b,) item to leave out of each row's bag (the training target), or None.
        exclude_w: (b,) that item's weight in the bag (0 if absent); required with ``exclude``.
    """
    uniq, rows = torch.unique(users, return_inverse=True)
    bag, pos = csr_rows(indptr, uniq)
    w = torch.ones(len(pos)) if hist_weights is None else hist_weights[pos]
    totals = torch.zeros(len(uniq)).index_add_(0, bag, w)  # (u,)
    counts = indptr[uniq + 1] - indptr[uniq]
    offsets = torch.cumsum(counts, 0) - counts
    return History(hist_items[pos], offsets, w, totals, rows=rows, exclude=exclude, exclude_w=exclude_w)


def localize(hist: History) -> History:
    """The same bags over a local table: the distinct items of the bags and left-out targets, renumbered.

    A training step then pools a (k, d) table of the k distinct items its bags hold, instead of building the whole
    catalogue's table and its dense gradient every step (17-20 % faster steps on the three benchmark sets,
    docs/quality.md). The sampler does this in its prefetch thread, off the training thread.
    """
    if hist.table_items is not None:
        return hist
    ex = hist.exclude if hist.exclude is not None else hist.items[:0]
    table, local = torch.unique(torch.cat([hist.items, ex]), return_inverse=True)
    m = len(hist.items)
    return History(local[:m], hist.offsets, hist.weights, hist.totals, rows=hist.rows,
                   exclude=local[m:] if hist.exclude is not None else None, exclude_w=hist.exclude_w,
                   table_items=table)
