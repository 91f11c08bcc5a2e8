"""Training batches as tensors: positives, sampled negatives (uniform and geo-hard) and user-history bags.

Everything is driven by one explicit ``torch.Generator`` so an epoch's batches depend only on its state (which is
what makes ``--resume`` reproduce an uninterrupted run). No per-sample Python: negatives, the "is this sample one
of the user's positives?" check (``searchsorted`` over sorted ``user * n_items + item`` keys) and leave-one-out
history bags are all vectorised.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields

import numpy as np
import torch
from torch import Tensor

from geotower.model.history import (
    BatchUsers,
    CellBags,
    History,
    Profile,
    cell_bags,
    history_bags,
    localize,
    user_profiles,
)
from geotower.model.trend import trend_features
from geotower.schema import local_xy_km


@dataclass
class TrainData:
    """Training rows and per-user positive sets in model index space.

    Attributes:
        users, items: (r,) int64 rows the loss iterates over (positives only for bpr/softmax, all rows for bce).
        labels: (r,) float32, 1.0 for positives.
        weights: (r,) float32 confidence weights.
        hist_indptr, hist_items: CSR (n_users + 1,), (p,) of each user's distinct positive items (sorted).
        hist_weights: (p,) float32 weight of each history entry (summed confidence of the pair).
        pos_keys: (p,) sorted int64 ``user * n_items + item`` of all positive pairs.
        log_pop: (n_items,) log of each item's share of positive rows (for logQ correction).
        nb_indptr, nb_items: CSR of each item's geo neighbours (for hard negatives), or None.
        buckets: (r,) time bucket of each row, trend_table (buckets, n_items, h), trend_now (n_items, h): the
            time-decayed popularity features (:mod:`geotower.model.trend`), or None without timestamps.
    """

    n_users: int
    n_items: int
    users: Tensor
    items: Tensor
    labels: Tensor
    weights: Tensor
    hist_indptr: Tensor
    hist_items: Tensor
    hist_weights: Tensor
    pos_keys: Tensor
    log_pop: Tensor
    nb_indptr: Tensor | None = None
    nb_items: Tensor | None = None
    buckets: Tensor | None = None
    trend_table: Tensor | None = None
    trend_now: Tensor | None = None


def build_train_data(users: np.ndarray, items: np.ndarray, positive: np.ndarray, weight: np.ndarray,
                     n_users: int, n_items: int, loss: str, neighbours: tuple[np.ndarray, np.ndarray] | None = None,
                     times: np.ndarray | None = None, half_lives_days: tuple[float, ...] = ()) -> TrainData:
    """Build :class:`TrainData` from interaction arrays already mapped to indices.

    Args:
        users, items: (r,) int64 indices; positive: (r,) bool; weight: (r,) float confidence.
        n_users, n_items: sizes of the index spaces.
        loss: "bce" keeps every row (rated negatives are labelled 0); "bpr"/"softmax" keep positives only.
        neighbours: optional (indptr, items) CSR of geo neighbours per item.
        times, half_lives_days: (r,) timestamps in seconds and the trend half-lives; both given = trend features.
    """
    keys = users[positive].astype(np.int64) * n_items + items[positive]
    uniq, inverse = np.unique(keys, return_inverse=True)
    pair_w = np.bincount(inverse, weights=weight[positive], minlength=len(uniq)).astype(np.float32)
    hist_users = uniq // n_items
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.add.at(indptr, hist_users + 1, 1)
    pop = np.bincount(items[positive], minlength=n_items).astype(np.float64)
    keep = np.ones(len(users), dtype=bool) if loss == "bce" else positive
    t = torch.from_numpy
    trend = None
    if times is not None and len(half_lives_days) and len(users):
        trend = trend_features(items, times, n_items, half_lives_days, counted=positive)
    data = TrainData(
        n_users=n_users, n_items=n_items, users=t(users[keep].astype(np.int64)), items=t(items[keep].astype(np.int64)),
        labels=t(positive[keep].astype(np.float32)), weights=t(weight[keep].astype(np.float32)),
        hist_indptr=t(np.cumsum(indptr)), hist_items=t((uniq % n_items).astype(np.int64)), hist_weights=t(pair_w),
        pos_keys=t(uniq.astype(np.int64)),
        log_pop=t(np.log(np.maximum(pop, 0.5) / max(pop.sum(), 1.0)).astype(np.float32)),
        nb_indptr=None if neighbours is None else t(neighbours[0].astype(np.int64)),
        nb_items=None if neighbours is None else t(neighbours[1].astype(np.int64)),
    )
    if trend is not None:
        data.buckets, data.trend_table, data.trend_now = t(trend.row_bucket[keep]), t(trend.table), t(trend.now)
    return data


def is_positive(pos_keys: Tensor, users: Tensor, items: Tensor, n_items: int) -> Tensor:
    """Elementwise: is (users, items) a train-positive pair? Broadcasts like ``users * n_items + items``."""
    keys = users * n_items + items
    idx = torch.searchsorted(pos_keys, keys).clamp_max(len(pos_keys) - 1)
    return pos_keys[idx] == keys


@dataclass
class Batch:
    """One step's tensors; ``negatives`` are (b, n) for bce/bpr or a shared (m,) pool for softmax."""

    users: Tensor
    items: Tensor
    labels: Tensor
    weights: Tensor
    history: History | Profile
    negatives: Tensor
    neg_valid: Tensor | None = None  # (b, n) for bce/bpr
    invalid: Tensor | None = None  # (b, u) for softmax: the column is another positive of the row's user
    unique_items: Tensor | None = None  # (u,) the softmax columns: the distinct in-batch items and negatives
    log_q: Tensor | None = None  # (u,) for softmax: -log of the summed exp(-logQ) of each column's copies
    target: Tensor | None = None  # (b,) softmax column of each row's positive
    target_log_q: Tensor | None = None  # (b,) logQ of each row's own copy of its positive
    buckets: Tensor | None = None  # (b,) time bucket of each row (trend prior)
    full: bool = False  # full softmax: the columns are the whole catalogue in order (no gather needed)

    def to(self, device: torch.device) -> Batch:
        """The same batch on ``device`` (built on the CPU by the sampler, trained where the model lives)."""
        moved: dict[str, object] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Tensor):
                value = value.to(device, non_blocking=True)
            elif isinstance(value, (History, Profile)):
                value = value.to(device)
            moved[f.name] = value
        return Batch(**moved)  # type: ignore[arg-type]


class BatchSampler:
    """Shuffles the rows each epoch and samples negatives with one explicit generator.

    Args:
        data: the training tensors.
        loss: "bce", "bpr" or "softmax".
        batch_size: rows per step.
        n_negatives: negatives per row (bce/bpr) or extra shared negatives per row (softmax).
        hard_ratio: share of negatives drawn among the geo neighbours of the row's positive.
        logq: subtract log sampling probability of each softmax column.
        leave_one_out: drop the target from its own history bag.
        weighted_history: weight history items by their confidence instead of a plain mean.
        generator: the only source of randomness.
        full_softmax: softmax over every item (the columns are the whole catalogue; no sampling, no logQ).
        device: where the batches go (built on the CPU, moved in the prefetch thread); None/cpu = stay.
        profile_inputs: the items' (dense features, grid cells) when the user tower pools no item IDs: batches then
            carry a :class:`~geotower.model.history.Profile` (pre-aggregated means) instead of item bags.
    """

    def __init__(self, data: TrainData, loss: str, batch_size: int, n_negatives: int, *, generator: torch.Generator,
                 hard_ratio: float = 0.0, logq: bool = True, leave_one_out: bool = True,
                 weighted_history: bool = False, full_softmax: bool = False, device: torch.device | None = None,
                 profile_inputs: tuple[Tensor, Tensor] | None = None) -> None:
        self.data, self.loss, self.batch_size = data, loss, batch_size
        self.n_negatives, self.hard_ratio, self.logq = n_negatives, hard_ratio, logq
        self.leave_one_out, self.weighted_history = leave_one_out, weighted_history
        self.generator = generator
        self.full_softmax = full_softmax and loss == "softmax"
        self.device = None if device is None or device.type == "cpu" else device  # None: batches stay on the CPU
        # build batches ahead in a background thread (geotower.train.loop.prefetched); off when every core trains
        self.prefetch = True
        self._profile: tuple[Tensor, Tensor, list[CellBags]] | None = None  # (bag weights, dense, cell bags)
        if profile_inputs is not None:
            dense, cells = profile_inputs
            w = data.hist_weights if weighted_history else torch.ones(len(data.hist_items))
            self._profile = (w, dense.float(), cell_bags(data.hist_indptr, data.hist_items, w, cells.long()))

    def __len__(self) -> int:
        return (len(self.data.users) + self.batch_size - 1) // self.batch_size

    def _sample(self, anchors: Tensor, shape: tuple[int, ...]) -> Tensor:
        """Uniform items, a ``hard_ratio`` share replaced by a random geo neighbour of ``anchors``."""
        d, g = self.data, self.generator
        neg = torch.randint(d.n_items, shape, generator=g)
        if self.hard_ratio <= 0 or d.nb_indptr is None or d.nb_items is None or len(d.nb_items) == 0:
            return neg
        anchor = anchors.expand(shape) if anchors.dim() == len(shape) else anchors.reshape(shape)
        start, count = d.nb_indptr[anchor], d.nb_indptr[anchor + 1] - d.nb_indptr[anchor]
        pick = (torch.rand(shape, generator=g) * count).long().clamp_max((count - 1).clamp_min(0))
        hard = (torch.rand(shape, generator=g) < self.hard_ratio) & (count > 0)
        return torch.where(hard, d.nb_items[(start + pick).clamp_max(len(d.nb_items) - 1)], neg)

    def _weight_in_history(self, users: Tensor, items: Tensor, hist_w: Tensor | None) -> Tensor:
        """(b,) weight of each (user, item) in the user's history bag; 0 where it is not a positive."""
        d = self.data
        keys = users * d.n_items + items
        idx = torch.searchsorted(d.pos_keys, keys).clamp_max(len(d.pos_keys) - 1)
        found = (d.pos_keys[idx] == keys).float()
        return found if hist_w is None else found * hist_w[idx]

    def _positive_columns(self, users: Tensor | BatchUsers, unique_items: Tensor) -> Tensor:
        """(b, u) bool: is ``unique_items[j]`` a train positive of row ``i``'s user (``users``: each row's user, or
        their :class:`BatchUsers`)? Walks the distinct users' positive lists (each distinct user's once; each item
        looked up in an item -> column table) instead of testing all b * u pairs."""
        d = self.data
        who = BatchUsers.of(d.hist_indptr, users)
        uniq, rows, bag, pos = who.uniq, who.rows, who.bag, who.pos
        n = len(unique_items)
        # item -> its column, or the spare column n for items outside the batch (a gather, not a search:
        # searchsorted was ~45 % of building a batch; the spare column spares two boolean selections)
        column = torch.full((d.n_items,), n, dtype=torch.long)
        column[unique_items] = torch.arange(n)
        out = torch.zeros(len(uniq), n + 1, dtype=torch.bool)
        out[bag, column[d.hist_items[pos]]] = True
        return out[rows, :n]

    def _batch(self, rows: Tensor) -> Batch:
        d = self.data
        users, items = d.users[rows], d.items[rows]
        hist_w = d.hist_weights if self.weighted_history else None
        hist: History | Profile
        # the profiles and the positive columns walk the same history entries: found once, when either is built
        masked = self.full_softmax or self.loss == "softmax"
        who: Tensor | BatchUsers = BatchUsers.of(d.hist_indptr, users) if masked or self._profile is not None \
            else users
        if self._profile is not None:
            w, dense, cells = self._profile
            hist = user_profiles(d.hist_indptr, d.hist_items, w, cells, dense, who)
        else:
            hist = history_bags(d.hist_indptr, d.hist_items, hist_w, users)
        if self.leave_one_out:
            hist.exclude, hist.exclude_w = items, self._weight_in_history(users, items, hist_w)
        if isinstance(hist, History):
            hist = localize(hist)
        b = Batch(users, items, d.labels[rows], d.weights[rows], hist, torch.empty(0, dtype=torch.long))
        b.buckets = None if d.buckets is None else d.buckets[rows]
        if self.full_softmax:  # every item is a column: the exact softmax the sampled ones approximate
            b.unique_items = torch.arange(d.n_items)
            b.invalid = self._positive_columns(who, b.unique_items)  # (b, n_items)
            b.target, b.full = items, True
        elif self.loss == "softmax":
            m = len(rows) * self.n_negatives
            anchors = items[torch.randint(len(items), (m,), generator=self.generator)] if m else items[:0]
            b.negatives = self._sample(anchors, (m,))
            b.unique_items, column = torch.unique(torch.cat([items, b.negatives]), return_inverse=True)  # (u,), (b+m,)
            b.target = column[:len(rows)]
            b.invalid = self._positive_columns(who, b.unique_items)  # (b, u)
            b.log_q, b.target_log_q = self._column_log_q(items, m, column, len(b.unique_items))
        elif self.n_negatives > 0:
            b.negatives = self._sample(items[:, None], (len(rows), self.n_negatives))  # (b, n)
            b.neg_valid = ~is_positive(d.pos_keys, users[:, None], b.negatives, d.n_items)
        return b

    def _column_log_q(self, items: Tensor, m: int, column: Tensor, n_columns: int) -> tuple[Tensor, Tensor]:
        """((u,) log_q of each distinct column, (b,) logQ of each row's own positive) for the in-batch softmax.

        Why distinct columns: the batch's b + m candidates hold each popular item many times; a softmax over the
        copies, each with its own logQ, has the denominator of one over the distinct items whose logit carries
        ``-log sum(exp(-logQ))`` over its copies, with 14-33 % fewer logits on the shared data sets. The row's own copy
        of its positive (the numerator; the other copies are its user's positives, masked) keeps its own logQ
        (:func:`geotower.model.losses.softmax_loss`), so the loss and its gradients are those over the copies.
        Without logQ correction each copy counts once: ``log_q = -log(copies)``.
        """
        d, b = self.data, len(items)
        if self.logq:
            uniform = torch.full((m,), float(np.log(max(m, 1) / d.n_items)))
            per_copy = torch.cat([d.log_pop[items] + float(np.log(b)), uniform])  # (b + m,)
        else:
            per_copy = torch.zeros(b + m)
        summed = torch.zeros(n_columns, dtype=torch.float64).index_add_(0, column, torch.exp(-per_copy.double()))
        return (-torch.log(summed)).float(), per_copy[:b]

    def epoch(self) -> Iterator[Batch]:
        """Yield the batches of one epoch (shuffled with the generator)."""
        perm = torch.randperm(len(self.data.users), generator=self.generator)
        for start in range(0, len(perm), self.batch_size):
            batch = self._batch(perm[start:start + self.batch_size])
            yield batch if self.device is None else batch.to(self.device)


def geo_neighbours(lat: np.ndarray, lon: np.ndarray, radius_km: float, max_pairs: int = 20_000_000
                   ) -> tuple[np.ndarray, np.ndarray]:
    """CSR (indptr, items) of the places within ``radius_km`` of each place (equirectangular km, KD-tree).

    Used to draw geo-hard negatives: places in the same neighbourhood as a positive. ``max_pairs`` bounds memory in
    very dense cities; beyond it the radius is halved until the pairs fit.
    """
    from scipy.spatial import cKDTree

    xy = local_xy_km(lat, lon, (float(np.mean(lat)), float(np.mean(lon))))
    tree = cKDTree(xy)
    radius = radius_km
    pairs = tree.query_pairs(radius, output_type="ndarray")
    while len(pairs) > max_pairs:
        radius /= 2
        pairs = tree.query_pairs(radius, output_type="ndarray")
    src = np.concatenate([pairs[:, 0], pairs[:, 1]])
    dst = np.concatenate([pairs[:, 1], pairs[:, 0]])
    order = np.lexsort((dst, src))
    indptr = np.zeros(len(lat) + 1, dtype=np.int64)
    np.add.at(indptr, src + 1, 1)
    return np.cumsum(indptr), dst[order].astype(np.int64)
