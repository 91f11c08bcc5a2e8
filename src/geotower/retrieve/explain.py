"""Why a place was recommended: exact score decompositions of the (default) linear towers.

A score is ``<u, v>`` (+ the trend prior column). With linear towers both sides are sums before normalisation:

* user: ``z_u = W_u [mean_h x_h ; mean_h id_h ; user features] + b_u + id_u`` (history pooling), so
  ``z_u = sum_h A_h / |H| + rest`` with ``A_h = W_u [x_h ; id_h]`` one vector per liked place, and the part of the
  score due to liked place ``h`` is exactly ``scale * <A_h, v> / (|H| ||z_u||)``;
* item: ``z_v = W_v x_v + b_v + id_v`` over the place's encoded features ``x_v`` (standardised OSM surroundings
  counts/lengths/areas, categories, grid cells), so feature ``j`` contributes exactly
  ``<u, W_v[:, j]> x_vj / ||z_v||``. ``features`` lists the top surroundings/content features; the grid cells and
  coordinate encodings are summed into ``location``, the learned place-ID embedding into ``identity``.

An ensemble sums the members' parts (each member's user block carries ``1 / members``). With hidden layers
(``model.n_layers > 0``) the decomposition is not exact: liked places are then ranked by the dot product of their
embedding with the place's (``exact: false``) and feature reasons are left out. What stays unexplained by the
liked places (the user's own ID embedding, user features, biases) is reported as ``profile`` so the parts add up to
the score. The model is read duck-typed (``members``, ``item_mlp``, ``user_mlp``...), so this module does not import
``geotower.model``; torch is used only for the few rows of one answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

TOP = 3  # liked places and features listed per recommendation


@dataclass
class _Member:
    tower: Any
    start: int  # first column of this member's block in the retrieval embedding
    dim: int  # embed_dim


def _linear(seq: Any) -> bool:
    return seq is None or len(seq) == 1


def _dense_names(encoder: Any) -> list[str]:
    """Names of the encoded dense columns, in the encoder's order."""
    names = [str(c) for c in getattr(encoder, "numeric_", [])]
    for col, vocab in getattr(encoder, "vocab_", {}).items():
        names += [f"{col}={label}" for label in vocab]
    geo = getattr(encoder, "geo_", None)
    if geo is not None:
        names += [f"location_{i}" for i in range(geo.dense_dim)]
    return names


class Explainer:
    """Explains answers of one :class:`~geotower.retrieve.recommender.Recommender` over a loaded bundle.

    Args:
        bundle: a loaded run (``model``, ``item_encoder``, ``item_emb``).
    """

    def __init__(self, bundle: Any) -> None:
        model = bundle.model
        towers = list(model.members) if hasattr(model, "members") else [model]
        spec = towers[0].spec
        block = spec.embed_dim + (1 if towers[0]._prior_column() else 0)
        self.members = [_Member(t, i * block, spec.embed_dim) for i, t in enumerate(towers)]
        self.prior_cols = [i * block + spec.embed_dim for i in range(len(towers))] if block > spec.embed_dim else []
        self.spec = spec
        self.exact = all(_linear(t.item_mlp) and _linear(t.user_mlp) for t in towers)
        self.item_emb = np.asarray(bundle.item_emb, dtype=np.float32)
        self.n_trained = len(self.item_emb)
        enc = bundle.item_encoder
        self.feature_names = _dense_names(enc)[: spec.item_dense_dim]
        self.feature_names += [f"location_{i}" for i in range(len(self.feature_names), spec.item_dense_dim)]
        cells = list(getattr(getattr(enc, "geo_", None), "cells_m", ())) or [0] * len(spec.cell_vocab_sizes)
        self.cell_names = [f"location cell ({m:g} m)" for m in cells][: len(spec.cell_vocab_sizes)]

    # --- liked places -------------------------------------------------------------------------------
    def _history_parts(self, q: np.ndarray, rows: np.ndarray, hist: np.ndarray, user_row: int | None
                       ) -> np.ndarray:
        """(len(hist), len(rows)) part of each result's score due to each liked place."""
        out = np.zeros((len(hist), len(rows)))
        if not self.exact:
            keep = [c for c in range(self.item_emb.shape[1]) if c not in self.prior_cols]
            dots: np.ndarray = self.item_emb[hist][:, keep] @ self.item_emb[rows][:, keep].T
            return dots / max(len(hist), 1)
        h = torch.from_numpy(hist.astype(np.int64))
        with torch.no_grad():
            for m in self.members:
                t = m.tower
                if t.user_mlp is None:
                    continue
                parts: list[torch.Tensor] = []
                if t.item_in_dim > 0:
                    parts.append(t.item_inputs(t.item_dense[h], t.item_cells[h]))
                if t.spec.use_history and t.item_id is not None:
                    parts.append(t.item_id(h) * t.item_known[h][:, None])
                if not parts:
                    continue
                p = torch.cat(parts, dim=1)  # (H, pooled inputs)
                lin = t.user_mlp[0]
                a = p @ lin.weight[:, : p.shape[1]].T  # (H, D)
                z = a.mean(0) + lin.bias
                if t.user_id is not None and user_row is not None:
                    z = z + t.user_id.weight[user_row]
                norm = float(z.norm()) if t.spec.normalize else 1.0
                scale = t.score_scale / len(self.members) / max(norm, 1e-12)
                v = torch.from_numpy(self.item_emb[rows][:, m.start:m.start + m.dim])  # (k, D)
                out += (a @ v.T).numpy() * scale / len(hist)
        return out

    # --- features of the place ----------------------------------------------------------------------
    def _feature_parts(self, q: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, list[str], np.ndarray]:
        """(k, n_groups) part of each score due to each feature group, group names, (k, n_dense) z-values."""
        names = self.feature_names + self.cell_names + ["place identity (learned from visits)", "baseline"]
        out = np.zeros((len(rows), len(names)))
        idx = torch.from_numpy(rows.astype(np.int64))
        values = np.zeros((len(rows), len(self.feature_names)))
        with torch.no_grad():
            for m in self.members:
                t = m.tower
                qm = torch.from_numpy(q[m.start:m.start + m.dim].astype(np.float32))
                z = torch.zeros(len(rows), m.dim)
                if t.item_mlp is not None:
                    x = t.item_inputs(t.item_dense[idx], t.item_cells[idx])  # (k, in)
                    lin = t.item_mlp[0]
                    contrib = x * (qm @ lin.weight)[None, :]  # (k, in)
                    nd = t.spec.item_dense_dim
                    groups = [contrib[:, :nd]]
                    for level in range(len(t.cell_emb)):
                        s = nd + level * t.spec.cell_dim
                        groups.append(contrib[:, s:s + t.spec.cell_dim].sum(1, keepdim=True))
                    part = torch.cat(groups, dim=1)
                    z = z + lin(x)
                    base = (qm @ lin.bias).expand(len(rows))
                    values = x[:, :nd].numpy()
                else:
                    part = torch.zeros(len(rows), len(names) - 2)
                    base = torch.zeros(len(rows))
                ident = torch.zeros(len(rows))
                if t.item_id is not None:
                    ids = t.item_id(idx) * t.item_known[idx][:, None]
                    z = z + ids
                    ident = ids @ qm
                norm = z.norm(dim=1).clamp_min(1e-12) if t.spec.normalize else torch.ones(len(rows))
                full = torch.cat([part, ident[:, None], base[:, None]], dim=1) / norm[:, None]
                out += full.numpy()
        return out, names, values

    def explain(self, q: np.ndarray, rows: np.ndarray, scores: np.ndarray, history: np.ndarray,
                user_row: int | None, distance_km: np.ndarray | None, names: np.ndarray | None,
                item_ids: np.ndarray) -> list[dict[str, Any]]:
        """One ``reasons`` dict per result row (see the module docstring)."""
        q = np.asarray(q, dtype=np.float32).reshape(-1)
        hist = np.unique(history[history < self.n_trained]).astype(np.int64)
        trained = rows < self.n_trained
        safe = np.where(trained, rows, 0).astype(np.int64)
        hist_parts = self._history_parts(q, safe, hist, user_row) if len(hist) else np.zeros((0, len(rows)))
        feat, fnames, zvals = self._feature_parts(q, safe) if self.exact else (None, [], None)
        prior = (self.item_emb[safe][:, self.prior_cols] * q[self.prior_cols]).sum(1) if self.prior_cols \
            else np.zeros(len(rows))
        out = []
        for j in range(len(rows)):
            out.append(self._one(j, bool(trained[j]), float(scores[j]), hist, hist_parts[:, j], feat,
                                 fnames=fnames, zvals=zvals, prior=float(prior[j]), distance_km=distance_km,
                                 names=names, item_ids=item_ids))
        return out

    def _one(self, j: int, trained: bool, score: float, hist: np.ndarray, hp: np.ndarray, feat: np.ndarray | None,
             fnames: list[str], zvals: np.ndarray | None, prior: float, distance_km: np.ndarray | None,
             names: np.ndarray | None, item_ids: np.ndarray) -> dict[str, Any]:
        reasons: dict[str, Any] = {"exact": self.exact and trained}
        liked = []
        if trained and len(hist):
            for i in np.argsort(-hp, kind="stable")[:TOP]:
                row = int(hist[i])
                liked.append({"item_id": str(item_ids[row]), "name": None if names is None else names[row],
                              "contribution": round(float(hp[i]), 4)})
        reasons["liked"] = liked
        if self.exact and trained and len(hist):
            reasons["profile"] = round(score - prior - float(hp.sum()), 4)
        reasons["popularity"] = round(prior, 4) if self.prior_cols else None
        reasons["distance_km"] = None if distance_km is None or not np.isfinite(distance_km[j]) \
            else round(float(distance_km[j]), 3)
        features = []
        if feat is not None and trained:
            is_loc = np.array([n.startswith("location") for n in fnames])
            reasons["location"] = round(float(feat[j, is_loc].sum()), 4)  # grid cells + coordinate encodings
            reasons["identity"] = round(float(feat[j, fnames.index("place identity (learned from visits)")]), 4)
            own = ~is_loc & ~np.isin(fnames, ["place identity (learned from visits)", "baseline"])
            cand = np.flatnonzero(own)
            for g in cand[np.argsort(-feat[j, cand], kind="stable")][:TOP]:
                if feat[j, g] <= 0:
                    break
                entry: dict[str, Any] = {"feature": fnames[g], "contribution": round(float(feat[j, g]), 4)}
                if zvals is not None and g < zvals.shape[1]:
                    entry["value_sd"] = round(float(zvals[j, g]), 2)  # standardised value (log1p, z-score)
                features.append(entry)
        reasons["features"] = features
        reasons["text"] = _text(reasons)
        return reasons


def _text(r: dict[str, Any]) -> str:
    """One readable sentence from the parts."""
    bits = []
    liked = [x["name"] or x["item_id"] for x in r["liked"] if x["contribution"] > 0]
    if liked:
        bits.append("like " + ", ".join(liked[:2]) + " you liked")
    if r["features"]:
        feats = [f["feature"] + (f" ({f['value_sd']:+.1f} sd)" if "value_sd" in f else "") for f in r["features"]]
        bits.append("its features: " + ", ".join(feats[:2]))
    if r.get("location") is not None and r["location"] > 0.3:
        bits.append("its location")
    if r.get("popularity") is not None and r["popularity"] > 0.5:
        bits.append("popular lately")
    if r["distance_km"] is not None:
        bits.append(f"{r['distance_km']:.2f} km from the point")
    return "; ".join(bits) if bits else "ranked by the model's overall taste profile"
