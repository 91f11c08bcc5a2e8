"""A user's history as a bag of items: the user tower pools the inputs of the items a user liked.

Bags are built per distinct user of a batch (a user with several rows is pooled once) and can leave each row's own
target out (leave-one-out), so training does not learn to find an item from itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
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
    starts = indptr[rows]
    counts = indptr[rows + 1] - starts  # (b,)
    bag = torch.repeat_interleave(torch.arange(len(rows)), counts)  # (m,)
    # entry k of row r sits at starts[r] + (k - first entry of r): one gather instead of a second repeat_interleave
    # (213 -> 123 us for a Singapore batch's 18k history entries; it runs five times a batch)
    return bag, torch.arange(len(bag)) + (starts - (torch.cumsum(counts, 0) - counts))[bag]


@dataclass(frozen=True)
class BatchUsers:
    """A batch's distinct users (``uniq``, sorted; ``rows`` (b,) maps each row to one) and their history entries in
    a CSR (``bag`` (m,) the distinct user of each entry, ``pos`` (m,) its index into the CSR data).

    Built once per batch for both the profiles and the positive-column mask, which walk the same entries.
    """

    uniq: Tensor
    rows: Tensor
    bag: Tensor
    pos: Tensor

    @classmethod
    def of(cls, indptr: Tensor, users: Tensor | BatchUsers) -> BatchUsers:
        """The rows' ``users`` (b,) in the CSR ``indptr``; already-built ones as they are."""
        if isinstance(users, BatchUsers):
            return users
        uniq, rows = torch.unique(users, return_inverse=True)
        bag, pos = csr_rows(indptr, uniq)
        return cls(uniq, rows, bag, pos)


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


@dataclass
class CellBags:
    """Each user's history aggregated per grid cell at one level: CSR (n_users + 1,) ``indptr`` over the distinct
    known cells (> 0) of the user's history items, with the summed bag weight of the items in each."""

    indptr: Tensor
    cells: Tensor
    weights: Tensor


@dataclass
class Profile:
    """A training batch's user profiles (the means of the history items' inputs) from pre-aggregated parts.

    Why: without pooled item IDs a user's profile is the mean of fixed dense features and of grid-cell embeddings.
    The dense part is summed in the sampler (no gradient flows into fixed inputs), and the cell part is a bag over the
    user's *distinct* cells straight on the cell tables: no per-batch table of the history items, no bag over every
    history item and no gradient through one (``History`` does that, and still serves inference). The means equal
    :meth:`History`'s pooling (unit test), leave-one-out included.

    ``rows`` (b,) maps output rows to the distinct users; ``totals`` (u,) their bag weight sums; ``dense`` (u, d) the
    weighted sums of the history's dense features; ``cells`` one ``(cell ids, offsets (u,), weights)`` bag per level;
    row ``i`` leaves out ``exclude[i]`` of weight ``exclude_w[i]`` (0 when it is not in the bag).
    """

    rows: Tensor
    totals: Tensor
    dense: Tensor
    cells: list[tuple[Tensor, Tensor, Tensor]]
    exclude: Tensor | None = None
    exclude_w: Tensor | None = None

    def to(self, device: torch.device) -> Profile:
        """The same profile on ``device``."""
        def move(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(device, non_blocking=True)

        cells = [(c.to(device), o.to(device), w.to(device)) for c, o, w in self.cells]
        return Profile(self.rows.to(device), self.totals.to(device), self.dense.to(device), cells,
                       exclude=move(self.exclude), exclude_w=move(self.exclude_w))

    @property
    def n_rows(self) -> int:
        return len(self.rows)


def cell_bags(indptr: Tensor, hist_items: Tensor, hist_weights: Tensor, item_cells: Tensor) -> list[CellBags]:
    """Per grid level, each user's history (CSR ``indptr, hist_items`` with ``hist_weights``) summed per cell.

    Unknown cells (0, the padding row whose embedding is zero) are dropped: they add nothing to a sum, and the
    denominator of a mean is the bag's total weight, which counts every history item.
    """
    n_users = len(indptr) - 1
    owner = torch.repeat_interleave(torch.arange(n_users), indptr[1:] - indptr[:-1])  # (p,)
    out = []
    for level in range(item_cells.shape[1]):
        cell = item_cells[hist_items, level]
        known = cell > 0
        width = int(item_cells[:, level].max()) + 1 if len(item_cells) else 1
        uniq, inverse = torch.unique(owner[known] * width + cell[known], return_inverse=True)
        weights = torch.zeros(len(uniq)).index_add_(0, inverse, hist_weights[known].float())
        counts = torch.bincount(uniq // width, minlength=n_users)
        out.append(CellBags(torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)]), uniq % width, weights))
    return out


def user_profiles(indptr: Tensor, hist_items: Tensor, hist_weights: Tensor, cells: list[CellBags],
                  item_dense: Tensor, users: Tensor | BatchUsers) -> Profile:
    """The :class:`Profile` of the (b,) rows ``users``: dense sums and cell bags of their distinct users.

    Args:
        indptr, hist_items, hist_weights: CSR of every user's history items and their bag weights.
        cells: :func:`cell_bags` of that history.
        item_dense: (n_items, d) the items' dense inputs (fixed: summed here, without gradient).
        users: (b,) user of each row, or their :class:`BatchUsers` in that CSR.
    """
    who = BatchUsers.of(indptr, users)
    uniq, rows, bag, pos = who.uniq, who.rows, who.bag, who.pos
    w = hist_weights[pos]
    totals = torch.zeros(len(uniq)).index_add_(0, bag, w)
    if item_dense.shape[1]:
        counts = indptr[uniq + 1] - indptr[uniq]
        dense = F.embedding_bag(hist_items[pos], item_dense, torch.cumsum(counts, 0) - counts, mode="sum",
                                per_sample_weights=w)
    else:
        dense = item_dense.new_zeros(len(uniq), 0)
    bags = []
    for level in cells:
        _, at = csr_rows(level.indptr, uniq)
        counts = level.indptr[uniq + 1] - level.indptr[uniq]
        bags.append((level.cells[at], torch.cumsum(counts, 0) - counts, level.weights[at]))
    return Profile(rows, totals, dense, bags)
