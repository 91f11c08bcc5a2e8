"""geotower's metrics by band: user activity, item popularity and distance from home (where it is good and where not).

Pure arrays in, rows out; :mod:`geotower.evaluate.report` writes them into ``report.md`` and ``report.html``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

DISTANCE_BANDS_KM = (0.5, 2.0, 5.0)  # held-out visits by distance from the user's home area


def _se(x: np.ndarray) -> float:
    return float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan")


def _band_rows(label: str, values: np.ndarray, bands: np.ndarray, names: list[str], unit: str) -> list[dict[str, Any]]:
    rows = []
    for b, name in enumerate(names):
        x = values[bands == b]
        if len(x):
            rows.append({"by": label, "band": name, "n": int(len(x)), "unit": unit, "mean": float(x.mean()),
                         "se": _se(x)})
    return rows


def _haversine_km(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    p1, p2 = np.radians(lat1), np.radians(lat2)
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(np.radians(lon2 - lon1) / 2) ** 2
    km: np.ndarray = 2 * 6371.0088 * np.arcsin(np.sqrt(np.clip(a, 0, 1)))
    return km


def breakdowns(topk: np.ndarray, truth: Any, train_pos: Any, k: int, lat: np.ndarray | None = None,
               lon: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Metrics by user activity, item popularity and distance from home, each band with its standard error.

    Args:
        topk: (n, >=k) ranked item indices of the n evaluated users (train-seen items already excluded).
        truth: (n, n_items) CSR of their held-out positives (not seen in training).
        train_pos: (n, n_items) CSR of their train positives (activity, popularity, home area).
        lat, lon: (n_items,) item coordinates, for the distance bands (None: no distance bands).

    Returns:
        Rows ``{by, band, n, unit, mean, se}``: NDCG@K per user for activity; the share of held-out visits that
        made the top K (a per-visit recall) for popularity and distance.
    """
    import scipy.sparse as sp

    truth, train_pos = sp.csr_matrix(truth), sp.csr_matrix(train_pos)
    n, n_items = truth.shape
    top = np.asarray(topk)[:, :k].astype(np.int64)
    rel_rows = np.repeat(np.arange(n), np.diff(truth.indptr))
    rel_items = truth.indices.astype(np.int64)
    top_keys = np.sort((np.arange(n)[:, None] * n_items + top).ravel())
    pair_keys = rel_rows * n_items + rel_items
    pos = np.minimum(np.searchsorted(top_keys, pair_keys), max(len(top_keys) - 1, 0))
    pair_hit = (top_keys[pos] == pair_keys).astype(np.float64) if len(top_keys) else np.zeros(len(pair_keys))
    # per-user NDCG@K (binary gains), as in topk_metrics
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    ranks_hit = np.zeros((n, k))
    key_rank = (np.arange(n)[:, None] * n_items + top)
    sorted_pairs = np.sort(pair_keys)
    p2 = np.minimum(np.searchsorted(sorted_pairs, key_rank), max(len(sorted_pairs) - 1, 0))
    ranks_hit = (sorted_pairs[p2] == key_rank) if len(sorted_pairs) else ranks_hit.astype(bool)
    n_rel = np.diff(truth.indptr)
    ideal = np.cumsum(discount)[np.clip(np.minimum(n_rel, k), 1, k) - 1]
    ndcg = (ranks_hit @ discount) / ideal
    activity = np.diff(train_pos.indptr)
    edges = np.unique(np.quantile(activity, [1 / 3, 2 / 3]).round())
    act_band = np.searchsorted(edges, activity, side="right")
    bounds = [0, *edges.astype(int).tolist(), int(activity.max())]
    act_names = [f"{bounds[i] + (1 if i else 0)}-{bounds[i + 1]} train visits" if i < len(edges) else
                 f">{bounds[i]} train visits" for i in range(len(edges) + 1)]
    out = _band_rows("user activity", ndcg, act_band, act_names, f"NDCG@{k} per user")
    pop = np.asarray((train_pos > 0).sum(axis=0)).ravel()  # train users per item
    order = np.argsort(-pop, kind="stable")
    rank = np.empty(n_items, np.int64)
    rank[order] = np.arange(n_items)
    item_band = np.where(rank < 0.1 * n_items, 0, np.where(rank < 0.5 * n_items, 1, 2))
    out += _band_rows("item popularity", pair_hit, item_band[rel_items],
                      ["head (top 10 % of places)", "torso (next 40 %)", "tail (last 50 %)"],
                      f"held-out visits in the top {k}")
    if lat is not None and lon is not None and np.isfinite(lat).any():
        w = train_pos.copy()
        w.data = np.ones_like(w.data)
        cnt = np.maximum(np.asarray(w.sum(axis=1)).ravel(), 1)
        lat0, lon0 = np.nan_to_num(lat), np.nan_to_num(lon)
        home_lat, home_lon = (w @ lat0) / cnt, (w @ lon0) / cnt  # the mean of the user's train places
        dist = _haversine_km(home_lat[rel_rows], home_lon[rel_rows], lat0[rel_items], lon0[rel_items])
        names = [f"< {DISTANCE_BANDS_KM[0]:g} km"] + [f"{a:g}-{b:g} km" for a, b in
                                                      zip(DISTANCE_BANDS_KM, DISTANCE_BANDS_KM[1:], strict=False)]
        names.append(f"> {DISTANCE_BANDS_KM[-1]:g} km")
        out += _band_rows("distance from home", pair_hit, np.searchsorted(DISTANCE_BANDS_KM, dist), names,
                          f"held-out visits in the top {k}")
    return out
