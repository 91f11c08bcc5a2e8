"""The diner simulator: seeded Yelp-format ``business.json`` + ``review.json`` for real places, with ground truth.

Generative model (full text in ``docs/simulator.md``). Places are projected to local kilometres. Each place ``i`` has
a vector ``v_i = [c_i, z_i, f_i]``: its categories as a unit-norm multi-hot ``c_i``, a hidden latent ``z_i ~ N(0, I)``
and, with a feature table, its standardised ``log1p`` OSM context ``f_i``; and an intrinsic quality ``q_i`` that is
Zipf-like: places are ranked by ``stars_weight * z(stars) + N(0, 1)`` and ``q_i = -zipf_exponent * log(rank)``
(centred). Each user ``u`` has a home drawn from a Dirichlet mixture of neighbourhoods centred on random places
(Gaussian spread ``home_spread_km``), a distance decay ``g_u`` (per km, log-normal), a taste ``t_u = [theta, w, o]``
(category taste ``N(0, category_scale^2)``, latent taste with variance ``latent_scale^2 / n_latent``, OSM taste with
variance ``osm_scale^2 / n_osm``), a rating bias ``b_u``, a log-normal activity and an active period (join times
follow global exponential growth, stay length is exponential). Utility ``U(u, i) = t_u . v_i + q_i - g_u d(u, i)``.
A user's places are drawn by softmax over ``U`` without replacement (Gumbel-top-k over a candidate set: the
``n_near`` nearest places to home plus ``n_random`` uniform ones), their stars from the liking
``t_u . v_i + q_i`` standardised over the user's candidates, plus ``b_u`` and ``N(0, rating_noise^2)``, cut into 1..5,
and their dates uniformly in the user's active period. Everything is vectorised per batch of users and streamed to
disk; one ``numpy`` Generator makes the same seed give byte-identical files.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.spatial import cKDTree
from tqdm import tqdm

from geotower import artifacts
from geotower.ingest.ground_truth import ground_truth_scores, write_ground_truth
from geotower.ingest.population import (
    STAR_CUTS,
    Diners,
    Places,
    SimConfig,
    build_places,
    build_users,
    project,
    read_places,
    yelp_ids,
)

# the simulator's public names, wherever they live (ground_truth_scores is the path the ground-truth README names)
__all__ = ["SimConfig", "ground_truth_scores", "project", "read_places", "simulate", "yelp_categories"]

_REVIEW_COLUMNS = ["review_id", "user_id", "business_id", "stars", "useful", "funny", "cool", "text", "date"]
RESTAURANT_ROOTS = ("Restaurants", "Food")


# --- choices --------------------------------------------------------------------------------------
def _candidates(tree: cKDTree, home: npt.NDArray[np.float64], n_items: int, k_near: int, n_random: int,
                rng: np.random.Generator) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """(b, M) sorted candidate item indices (nearest + uniform) and a mask of repeats to ignore."""
    _, near = tree.query(home, k=k_near)
    near = np.asarray(near).reshape(len(home), k_near)
    cand = np.sort(np.concatenate([near, rng.integers(0, n_items, (len(home), n_random))], axis=1), axis=1)
    repeat = np.zeros(cand.shape, dtype=bool)
    repeat[:, 1:] = cand[:, 1:] == cand[:, :-1]
    return cand.astype(np.int64), repeat


_Ints = npt.NDArray[np.int64]


def choose_batch(pl: Places, us: Diners, rows: _Ints, tree: cKDTree, cfg: SimConfig,
                 rng: np.random.Generator) -> tuple[_Ints, _Ints, _Ints]:
    """Places and stars for users ``rows``: Gumbel-top-k over softmax(U) per user, without replacement.

    Returns:
        (user row per review, item index per review, stars 1..5 per review), each (n_reviews_in_batch,).
    """
    k_near = min(cfg.n_near, len(pl.xy))
    cand, repeat = _candidates(tree, us.xy[rows], len(pl.xy), k_near, cfg.n_random, rng)  # (b, M)
    liking = np.einsum("bd,bmd->bm", us.taste[rows], pl.vec[cand]) + pl.quality[cand]  # (b, M)
    dist = np.linalg.norm(pl.xy[cand] - us.xy[rows][:, None, :], axis=2)  # (b, M) km
    util = np.where(repeat, -np.inf, liking - us.decay[rows][:, None] * dist)
    order = np.argsort(-(util + rng.gumbel(size=util.shape)), axis=1, kind="stable")  # Gumbel-max ranking
    take = np.arange(cand.shape[1])[None, :] < us.counts[rows][:, None]  # (b, M) first n_u positions
    r_idx, pos = np.nonzero(take)
    col = order[r_idx, pos]
    valid = np.where(repeat, np.nan, liking)
    mu, sd = np.nanmean(valid, axis=1), np.nanstd(valid, axis=1) + 1e-6
    satisfaction = (liking[r_idx, col] - mu[r_idx]) / sd[r_idx] + us.bias[rows][r_idx]
    satisfaction += rng.normal(0.0, cfg.rating_noise, len(r_idx))
    stars = 1 + np.searchsorted(np.asarray(STAR_CUTS), satisfaction)
    return rows[r_idx], cand[r_idx, col], stars.astype(np.int64)


def _review_frame(pl: Places, us: Diners, user_row: npt.NDArray[np.int64], item: npt.NDArray[np.int64],
                  stars: npt.NDArray[np.int64], rng: np.random.Generator) -> pd.DataFrame:
    n = len(item)
    t = us.join[user_row] + (rng.random(n) * (us.leave[user_row] - us.join[user_row])).astype(np.int64)
    dates = pd.Series(pd.to_datetime(t, unit="s").strftime("%Y-%m-%d %H:%M:%S"))
    useful, funny, cool = (rng.poisson(lam, n) for lam in (0.8, 0.2, 0.3))
    return pd.DataFrame({"review_id": yelp_ids(rng, n), "user_id": us.ids[user_row],
                         "business_id": pl.table["business_id"].to_numpy()[item], "stars": stars,
                         "useful": useful, "funny": funny, "cool": cool, "text": "", "date": dates},
                        columns=_REVIEW_COLUMNS)


def _batches(m: int, size: int) -> Iterator[npt.NDArray[np.int64]]:
    for start in range(0, m, size):
        yield np.arange(start, min(m, start + size), dtype=np.int64)


# --- outputs --------------------------------------------------------------------------------------
def yelp_categories(categories: pd.Series) -> pd.Series:
    """Yelp always lists a root category: prepend "Restaurants" where neither root token is present."""
    text = categories.fillna("").astype(str)
    has_root = text.str.split(",").apply(lambda toks: any(t.strip() in RESTAURANT_ROOTS for t in toks))
    return text.where(has_root, ("Restaurants, " + text).str.rstrip(", "))


def _business_frame(pl: Places, n: npt.NDArray[np.int64], total: npt.NDArray[np.float64]) -> pd.DataFrame:
    t = pl.table
    given = pd.to_numeric(t["stars"], errors="coerce").to_numpy(float) if "stars" in t else np.full(len(t), np.nan)
    mean = np.divide(total, n, out=np.full(len(t), np.nan), where=n > 0)
    stars = np.where(n > 0, np.round(mean * 2) / 2, np.nan_to_num(given, nan=3.0))
    city = t["city"].astype(object) if "city" in t else ""
    return pd.DataFrame({"business_id": t["business_id"], "name": t["name"], "address": "", "city": city,
                         "state": "", "postal_code": "", "latitude": t["lat"], "longitude": t["lon"],
                         "stars": stars.astype(float), "review_count": n, "is_open": 1, "attributes": None,
                         "categories": yelp_categories(t["categories"]), "hours": None})


def simulate(places_path: str | Path, out: str | Path, cfg: SimConfig, features: str | Path | None = None,
             progress: bool = True) -> dict[str, int]:
    """Write ``business.json``, ``review.json`` and ``ground_truth/`` for the places in ``places_path``.

    Args:
        places_path: csv/parquet with ``business_id, name, lat, lon, categories`` [, ``stars``, ``city``].
        out: output folder.
        cfg: generative model settings, including ``seed``, ``n_users`` and ``n_reviews``.
        features: optional csv/parquet of OSM context keyed by ``business_id`` or ``item_id``.
        progress: show a tqdm bar over user batches.

    Returns:
        Counts: places, users, reviews.
    """
    out = artifacts.check_output_dir(out)  # a file or read-only path: one-line error before the work
    rng = np.random.default_rng(cfg.seed)
    pl = build_places(read_places(places_path), cfg, rng, None if features is None else Path(features))
    cap = min(cfg.max_reviews_per_user, cfg.n_near, len(pl.xy))
    us = build_users(pl, cfg, cap, rng)
    tree = cKDTree(pl.xy)
    n_item, star_sum = np.zeros(len(pl.xy), np.int64), np.zeros(len(pl.xy))
    n_cand = min(cfg.n_near, len(pl.xy)) + cfg.n_random
    size = max(64, min(cfg.batch_users, 25_000_000 // (n_cand * pl.vec.shape[1])))  # gather of ~100 MB per batch
    with artifacts.atomic_path(out / "review.json") as tmp, open(tmp, "w", encoding="utf-8") as f:
        for rows in tqdm(list(_batches(len(us.ids), size)), desc="simulate", unit="batch", disable=not progress):
            user_row, item, stars = choose_batch(pl, us, rows, tree, cfg, rng)
            n_item += np.bincount(item, minlength=len(n_item))
            star_sum += np.bincount(item, weights=stars, minlength=len(n_item))
            f.write(_review_frame(pl, us, user_row, item, stars, rng).to_json(orient="records", lines=True))
            f.flush()
    business = _business_frame(pl, n_item, star_sum).to_json(orient="records", lines=True)
    artifacts.write_text(out / "business.json", business)
    write_ground_truth(out, pl, us, cfg)
    return {"places": len(pl.xy), "users": len(us.ids), "reviews": int(n_item.sum())}
