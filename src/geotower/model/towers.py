"""The two towers (pure ``nn.Module``; tensors in, tensors out; no IO, no pandas).

Item tower: ``MLP(item_input) [+ item-ID embedding]`` where ``item_input = [dense features | grid-cell embeddings]``.
User tower: ``MLP(user_input) [+ user-ID embedding]`` where ``user_input`` concatenates

* the *profile*: the (weighted) mean of the item inputs of the user's positive train items (always, when item
  features are used; this is the original design),
* with ``use_history``: the mean of those items' learned item-ID embeddings (the table shared with the item tower),
  so the user tower pools full item representations, not only their features,
* the user's own encoded features (when a users table exists).

Both end in ``embed_dim``; with ``normalize`` both are L2-normalised and a score is ``cos / temperature``.
With ``trend_dim > 0`` a learned prior ``w . trend(item, t)`` over time-decayed popularity features
(:mod:`geotower.model.trend`) is added; the retrieval embeddings then carry one more column (item: the prior at the
end of training, user: 1) so retrieval stays a dot product.

The original content two-tower is exactly ``model.use_item_id=false, model.use_user_id=false,
model.use_history=false, model.normalize=false, model.n_layers=1, model.hidden_dim=512, model.embed_dim=128,
model.id_dropout=0, train.loss="bpr", train.n_negatives=1, train.history_leave_one_out=false,
features.geo_encoding="none"``:
item = MLP(standardised features), user = MLP(mean of the standardised features of the user's positive items).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geotower.model.history import History, Profile, history_bags
from geotower.model.spec import TowerSpec


def mlp(in_dim: int, hidden_dim: int, out_dim: int, n_layers: int, dropout: float) -> nn.Sequential:
    """``n_layers`` hidden ReLU layers of ``hidden_dim`` then a linear map to ``out_dim``."""
    layers: list[nn.Module] = []
    d = in_dim
    for _ in range(n_layers):
        layers += [nn.Linear(d, hidden_dim), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        d = hidden_dim
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


class TwoTower(nn.Module):
    """Item and user towers over fixed per-item/per-user feature tensors (non-persistent buffers).

    Args:
        spec: sizes and flags.
        item_dense: (n_items, item_dense_dim) encoded item features.
        item_cells: (n_items, n_levels) grid-cell ids (0 = unknown).
        user_dense: (n_users, user_dense_dim) encoded user features.
        item_known: (n_items,) bool, items whose ID embedding was trained (others use features only).
    """

    # buffers (register_buffer in __init__; torch's stubs would type them Tensor | Module)
    item_dense: Tensor
    item_cells: Tensor
    user_dense: Tensor
    item_known: Tensor
    trend_now: Tensor
    trend_table: Tensor

    def __init__(self, spec: TowerSpec, item_dense: Tensor, item_cells: Tensor, user_dense: Tensor,
                 item_known: Tensor) -> None:
        super().__init__()
        self.spec = spec
        self.register_buffer("item_dense", item_dense.float(), persistent=False)
        self.register_buffer("item_cells", item_cells.long(), persistent=False)
        self.register_buffer("user_dense", user_dense.float(), persistent=False)
        self.register_buffer("item_known", item_known.float(), persistent=False)
        use_feat = spec.use_item_features and self.item_in_dim > 0
        self.cell_emb: Sequence[nn.Embedding] = nn.ModuleList(  # type: ignore[assignment]  # items typed Module
            nn.Embedding(v, spec.cell_dim, padding_idx=0, sparse=spec.sparse_item_ids) for v in spec.cell_vocab_sizes)
        self.item_mlp = mlp(self.item_in_dim, spec.hidden_dim, spec.embed_dim, spec.n_layers, spec.dropout) \
            if use_feat else None
        self.item_id = nn.Embedding(spec.n_items, spec.embed_dim, sparse=spec.sparse_item_ids) \
            if spec.use_item_id else None
        self.user_id = nn.Embedding(spec.n_users, spec.embed_dim, sparse=spec.sparse_user_ids) \
            if spec.use_user_id else None
        for emb in (self.item_id, self.user_id):
            if emb is not None:
                nn.init.normal_(emb.weight, std=0.05)
        self.user_mlp = mlp(self.user_in_dim, spec.hidden_dim, spec.embed_dim, spec.n_layers, spec.dropout) \
            if self.user_in_dim > 0 else None
        self.trend_weight = nn.Parameter(torch.zeros(spec.trend_dim)) if spec.trend_dim > 0 else None
        self.item_bias = nn.Parameter(torch.zeros(spec.n_items)) if spec.item_bias else None
        self.register_buffer("trend_now", torch.zeros(spec.n_items, spec.trend_dim), persistent=spec.trend_dim > 0)
        self.register_buffer("trend_table", torch.zeros(0, spec.n_items, spec.trend_dim), persistent=False)
        # ID dropout draws from this generator when set (models trained side by side in threads must not share the
        # global RNG, or the interleaving of their draws would make the result vary); None = the global RNG
        self.dropout_generator: torch.Generator | None = None

    @property
    def item_in_dim(self) -> int:
        if not self.spec.use_item_features:
            return 0
        return self.spec.item_dense_dim + len(self.spec.cell_vocab_sizes) * self.spec.cell_dim

    @property
    def user_in_dim(self) -> int:
        pooled_ids = self.spec.embed_dim if (self.spec.use_history and self.spec.use_item_id) else 0
        return self.item_in_dim + pooled_ids + self.spec.user_dense_dim

    # --- item tower -------------------------------------------------------------------------------
    def item_inputs(self, dense: Tensor, cells: Tensor) -> Tensor:
        """(n, item_dense_dim), (n, levels) -> (n, item_in_dim): features plus concatenated cell embeddings."""
        parts = [dense] + [emb(cells[:, i]) for i, emb in enumerate(self.cell_emb)]
        return torch.cat(parts, dim=1)

    def _id_keep(self, n: int, known: Tensor) -> Tensor:
        """(n,) multiplier of ID embeddings: 0 for untrained IDs, and ID dropout while training."""
        if self.training and self.spec.id_dropout > 0:
            draw = torch.rand(n, device=known.device, generator=self.dropout_generator)
            known = known * (draw >= self.spec.id_dropout).float()
        return known

    def _finish(self, z: Tensor | None, n: int, device: torch.device) -> Tensor:
        z = torch.zeros(n, self.spec.embed_dim, device=device) if z is None else z
        return F.normalize(z, dim=1) if self.spec.normalize else z

    def encode_items(self, idx: Tensor) -> Tensor:
        """(n,) item indices -> (n, embed_dim) item embeddings (features + ID)."""
        z = None
        if self.item_mlp is not None:
            z = self.item_mlp(self.item_inputs(self.item_dense[idx], self.item_cells[idx]))  # (n, embed_dim)
        if self.item_id is not None:
            ids = self.item_id(idx) * self._id_keep(len(idx), self.item_known[idx])[:, None]
            z = ids if z is None else z + ids
        return self._finish(z, len(idx), idx.device)

    def encode_new_items(self, dense: Tensor, cells: Tensor) -> Tensor:
        """Cold-start items from features alone: (n, d), (n, levels) -> (n, embed_dim)."""
        z = self.item_mlp(self.item_inputs(dense, cells)) if self.item_mlp is not None else None
        return self._finish(z, len(dense), dense.device)

    # --- user tower -------------------------------------------------------------------------------
    def _bag_mean(self, hist: History, table: Tensor, lookup: Tensor | None = None, scale: Tensor | None = None,
                  pad: int | None = None) -> Tensor:
        """(b, d) weighted mean of ``table[lookup[item]] * scale[item]`` over each row's bag (leave-one-out aware).

        Empty bags (or a bag holding only the left-out item) give zeros.
        """
        if table.shape[1] == 0:  # no dense features: embedding_bag over a zero-width table fails on 2+ threads
            return table.new_zeros(hist.n_rows, 0)
        idx = hist.items if lookup is None else lookup[hist.items]
        w = hist.weights if scale is None else hist.weights * scale[hist.items]
        sums = F.embedding_bag(idx, table, hist.offsets, mode="sum", per_sample_weights=w, padding_idx=pad)  # (u, d)
        tot = hist.totals
        if hist.rows is not None:
            sums, tot = sums[hist.rows], tot[hist.rows]  # (b, d), (b,)
            if hist.exclude is not None and hist.exclude_w is not None:
                ex = hist.exclude
                ex_w = hist.exclude_w if scale is None else hist.exclude_w * scale[ex]
                vec = F.embedding(ex if lookup is None else lookup[ex], table, padding_idx=pad)  # (b, d)
                sums = sums - ex_w[:, None] * vec
                tot = tot - hist.exclude_w
        keep = (tot > 1e-6).float()
        return sums * (keep / tot.clamp_min(1e-6))[:, None]

    def _pool(self, hist: History | Profile) -> list[Tensor]:
        """Means over each bag of the item inputs (and of the item-ID embeddings with ``use_history``)."""
        pooled_ids = self.spec.use_history and self.item_id is not None
        content = self.item_in_dim > 0
        if isinstance(hist, Profile):
            if pooled_ids:
                raise ValueError("a Profile holds no item bags: the towers pool item IDs (model.use_history)")
            return self._pool_profile(hist) if content else []
        if hist.table_items is not None:
            return self._pool_local(hist, content, pooled_ids)
        if content and (len(self.cell_emb) or pooled_ids) and len(hist.items) >= len(self.item_dense):
            # bags hold more entries than the catalogue has items: pool one (n_items, item_in_dim [+ embed_dim])
            # table of the concatenated item inputs and ID embeddings (one embedding_bag and one dense gradient
            # instead of one per grid level and one for the IDs: the same means, measured ~1.4x faster steps)
            table = [self.item_inputs(self.item_dense, self.item_cells)]
            if pooled_ids:
                table.append(self.item_id.weight * self.item_known[:, None])  # type: ignore[union-attr]
            return [self._bag_mean(hist, torch.cat(table, dim=1))]
        parts: list[Tensor] = []
        if content:
            parts.append(self._bag_mean(hist, self.item_dense))  # (b, item_dense_dim)
            for level, emb in enumerate(self.cell_emb):
                parts.append(self._bag_mean(hist, emb.weight, self.item_cells[:, level], pad=0))  # (b, cell_dim)
        if pooled_ids:
            parts.append(self._bag_mean(hist, self.item_id.weight, scale=self.item_known))  # type: ignore[union-attr]
        return parts

    def _pool_local(self, hist: History, content: bool, pooled_ids: bool) -> list[Tensor]:
        """:meth:`_pool` over a local table (``hist.table_items``): the rows of the bags' distinct items only.

        The dense features (buffers: no gradient) are pooled apart from the learned parts (grid cells, IDs), which
        share one (k, d) table and one embedding_bag. The means and their column order are those of :meth:`_pool`.
        """
        t = hist.table_items
        assert t is not None
        parts: list[Tensor] = []
        learned: list[Tensor] = []
        if content:
            parts.append(self._bag_mean(hist, self.item_dense[t]))  # (b, item_dense_dim)
            learned += [emb(self.item_cells[t, level]) for level, emb in enumerate(self.cell_emb)]
        if pooled_ids:
            learned.append(self.item_id(t) * self.item_known[t, None])  # type: ignore[misc]
        if learned:
            parts.append(self._bag_mean(hist, torch.cat(learned, dim=1) if len(learned) > 1 else learned[0]))
        return parts

    def _pool_profile(self, p: Profile) -> list[Tensor]:
        """:meth:`_pool` from a :class:`Profile`: the dense sums it carries, and one bag per grid level over the
        users' distinct cells straight on the cell table; leave-one-out subtracts each row's target."""
        tot = p.totals[p.rows]  # (b,)
        sums = [p.dense[p.rows]] + [F.embedding_bag(c, emb.weight, o, mode="sum", per_sample_weights=w,
                                                    sparse=emb.sparse)[p.rows]
                                    for (c, o, w), emb in zip(p.cells, self.cell_emb, strict=True)]
        if p.exclude is not None and p.exclude_w is not None:
            ex, ex_w = p.exclude, p.exclude_w[:, None]
            left = [self.item_dense[ex]] + [emb(self.item_cells[ex, i]) for i, emb in enumerate(self.cell_emb)]
            sums = [s - ex_w * x for s, x in zip(sums, left, strict=True)]
            tot = tot - p.exclude_w
        keep = (tot > 1e-6).float()
        return [torch.cat(sums, dim=1) * (keep / tot.clamp_min(1e-6))[:, None]]

    def encode_users(self, hist: History | Profile, user_dense: Tensor, user_idx: Tensor | None = None) -> Tensor:
        """User embeddings from history bags, user features (n, user_dense_dim) and optional user indices."""
        n = hist.n_rows
        parts = self._pool(hist) + [user_dense]
        z = self.user_mlp(torch.cat(parts, dim=1)) if self.user_mlp is not None else None  # (n, embed_dim)
        if self.user_id is not None and user_idx is not None:
            known = torch.ones(n, device=user_dense.device)
            ids = self.user_id(user_idx) * self._id_keep(n, known)[:, None]
            z = ids if z is None else z + ids
        return self._finish(z, n, user_dense.device)

    def encode_known_users(self, hist: History | Profile, user_idx: Tensor) -> Tensor:
        """Users of the training index: their features come from the ``user_dense`` buffer."""
        return self.encode_users(hist, self.user_dense[user_idx], user_idx)

    # --- trend prior ------------------------------------------------------------------------------
    def set_trend(self, table: Tensor | None, now: Tensor) -> None:
        """Install trend features: ``table`` (buckets, n_items, h) for training rows, ``now`` (n_items, h)."""
        if table is not None:
            self.trend_table = table.float()
        self.trend_now = now.float()

    def trend_bias(self, buckets: Tensor, items: Tensor | None = None) -> Tensor | None:
        """(b, c) learned prior of candidate ``items`` (c,) (None = the whole catalogue) for rows in time ``buckets``
        (b,), or None without a trend.

        Only the distinct buckets and the candidate items are read from the (buckets, n_items, h) table: the whole
        table times the weights was ~20 % of a training step.
        """
        if self.trend_weight is None or len(self.trend_table) == 0:
            return None
        uniq, row = torch.unique(buckets, return_inverse=True)
        if items is None:
            return (self.trend_table[uniq] @ self.trend_weight)[row]  # (b, n_items)
        # (nb * c, h): the asked items of the distinct buckets only (gathering whole bucket rows first was 100 ms a
        # step on a 35k-item catalogue), as one index_select of flat (bucket, item) rows: the same values as
        # 2-d advanced indexing, 1.8x faster (that gather was ~13 % of a Yelp step)
        n_items, h = self.trend_table.shape[1:]
        flat = (uniq[:, None] * n_items + items[None, :]).reshape(-1)
        table = self.trend_table.reshape(-1, h).index_select(0, flat)
        return (table @ self.trend_weight).view(len(uniq), len(items))[row]  # (b, c)

    def _prior_column(self) -> bool:
        return self.trend_weight is not None or self.item_bias is not None

    def _now_prior(self, idx: Tensor | None, n: int) -> Tensor:
        """(n,) score offset of items ``idx`` now (trend at the end of training + item bias); new items (None)
        have no interactions and the mean bias of the trained items."""
        out = torch.zeros(n, device=self.item_known.device)
        if self.trend_weight is not None and idx is not None:
            out = out + (self.trend_now @ self.trend_weight)[idx]
        if self.item_bias is not None:
            if idx is not None:
                out = out + self.item_bias[idx]
            else:
                known = self.item_known > 0
                out = out + (self.item_bias[known].mean() if known.any() else 0.0)
        return out

    def retrieval_users(self, z: Tensor) -> Tensor:
        """Tower outputs (n, embed_dim) -> retrieval space: score scale baked in, plus the prior column."""
        z = z * self.score_scale
        return torch.cat([z, torch.ones(len(z), 1, device=z.device)], dim=1) if self._prior_column() else z

    def retrieval_items(self, v: Tensor, idx: Tensor | None) -> Tensor:
        """Item tower outputs -> retrieval space; ``idx`` None = new items (no interactions)."""
        if not self._prior_column():
            return v
        return torch.cat([v, self._now_prior(idx, len(v))[:, None]], dim=1)

    def new_user_embeddings(self, hist: History, user_dense: Tensor) -> Tensor:
        """Retrieval embeddings of users outside the training index (history bags and features, no user ID)."""
        return self.retrieval_users(self.encode_users(hist, user_dense))

    def new_item_embeddings(self, dense: Tensor, cells: Tensor) -> Tensor:
        """Retrieval embeddings of places from features alone (cold start)."""
        return self.retrieval_items(self.encode_new_items(dense, cells), None)

    @property
    def score_scale(self) -> float:
        """Factor on the dot product: 1 / temperature for normalised towers, else 1."""
        return 1.0 / self.spec.temperature if self.spec.normalize else 1.0

    def all_item_embeddings(self, chunk: int = 65536) -> Tensor:
        """(n_items, embed_dim [+1]) retrieval embeddings of every item (eval mode: no ID dropout)."""
        idx = torch.arange(self.spec.n_items, device=self.item_known.device)
        v = torch.cat([self.encode_items(idx[s:s + chunk]) for s in range(0, len(idx), chunk)])
        return self.retrieval_items(v, idx)

    def user_embeddings(self, indptr: Tensor, hist_items: Tensor, hist_weights: Tensor | None,
                        chunk: int = 8192, users: Tensor | None = None) -> Tensor:
        """(n_users, embed_dim) embeddings of every indexed user (or of ``users`` only, in their order), history =
        the CSR rows ``indptr, hist_items``.

        The score scale (1 / temperature) is baked in, so ``user @ item.T`` ranks like the training logits. The
        bags are built where the CSR lives (the CPU) and encoded where the model lives.
        """
        device = self.item_known.device
        users = torch.arange(self.spec.n_users) if users is None else users.cpu()
        out = [self.encode_known_users(history_bags(indptr, hist_items, hist_weights, users[s:s + chunk]).to(device),
                                       users[s:s + chunk].to(device)) for s in range(0, len(users), chunk)]
        return self.retrieval_users(torch.cat(out))
