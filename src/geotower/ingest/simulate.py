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

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from scipy.spatial import cKDTree
from tqdm import tqdm

from geotower import artifacts
from geotower.errors import ConfigError, DataError, GeotowerWarning
from geotower.schema import local_latlon, local_xy_km

STAR_CUTS = (-0.4, 0.1, 0.6, 1.4)  # satisfaction → 1..5 stars; gives about 10/8/12/25/45 % (Yelp-like)
_ID_ALPHABET = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", dtype=np.uint8)
_REVIEW_COLUMNS = ["review_id", "user_id", "business_id", "stars", "useful", "funny", "cool", "text", "date"]
RESTAURANT_ROOTS = ("Restaurants", "Food")


@dataclass(frozen=True)
class SimConfig:
    """Knobs of the generative model; defaults give Yelp-like sparsity and skew."""

    n_reviews: int = 100_000
    n_users: int | None = None  # None = n_reviews // 10
    seed: int = 0
    n_neighbourhoods: int = 20
    home_spread_km: float = 1.5
    decay_per_km: float = 0.6  # median utility lost per km from home
    decay_sigma: float = 0.5  # log-normal spread of the per-user decay
    category_scale: float = 1.5
    n_latent: int = 8
    latent_scale: float = 1.0
    osm_scale: float = 0.7
    zipf_exponent: float = 0.6
    stars_weight: float = 1.0
    n_near: int = 150
    n_random: int = 50
    max_reviews_per_user: int = 100
    activity_sigma: float = 1.0
    start: str = "2012-01-01"
    years: float = 10.0
    growth_per_year: float = 0.2
    mean_active_years: float = 3.0
    rating_noise: float = 0.8
    rating_bias_sd: float = 0.4
    batch_users: int = 1024

    def users(self) -> int:
        return self.n_users if self.n_users is not None else max(1, self.n_reviews // 10)


@dataclass
class _Places:
    """Places in local km with their item vectors; ``vec`` = [categories | latent | osm] blocks."""

    table: pd.DataFrame  # business_id, name, lat, lon, categories[, stars, city]
    xy: npt.NDArray[np.float64]  # (n, 2) km
    vec: npt.NDArray[np.float32]  # (n, D)
    quality: npt.NDArray[np.float32]  # (n,)
    blocks: dict[str, list[str]]
    origin: tuple[float, float]  # (lat0, lon0)


@dataclass
class _Users:
    ids: npt.NDArray[np.str_]
    xy: npt.NDArray[np.float64]  # (m, 2) km
    taste: npt.NDArray[np.float32]  # (m, D)
    decay: npt.NDArray[np.float32]  # (m,)
    bias: npt.NDArray[np.float32]  # (m,)
    join: npt.NDArray[np.int64]  # (m,) epoch seconds
    leave: npt.NDArray[np.int64]  # (m,) epoch seconds
    counts: npt.NDArray[np.int64]  # (m,) reviews per user


# --- inputs ---------------------------------------------------------------------------------------
def read_places(path: str | Path) -> pd.DataFrame:
    """Places table (``business_id, name, lat, lon, categories`` [, ``stars``, ``city``]), checked.

    Raises:
        DataError: missing column, duplicate id or bad coordinate, naming file, row and column.
    """
    path = Path(path)
    df = artifacts.read_table(path, dtype={"business_id": str})
    for col in ("business_id", "name", "lat", "lon", "categories"):
        if col not in df.columns:
            raise DataError(f"missing required column; found {', '.join(map(str, df.columns))}", path=path, column=col)
    dup = df["business_id"].duplicated().to_numpy() | df["business_id"].isna().to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        raise DataError(f"empty or duplicate business_id {df['business_id'].iloc[i]!r}", path=path, row=i,
                        column="business_id")
    for col, bound in (("lat", 90.0), ("lon", 180.0)):
        values = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
        bad = ~(np.abs(values) <= bound)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(f"must be a number in [-{bound:g}, {bound:g}], got {df[col].iloc[i]!r}", path=path,
                            row=i, column=col)
        df[col] = values
    if len(df) == 0:
        raise DataError("no places", path=path)
    return df.reset_index(drop=True)


def _category_block(categories: pd.Series, max_tokens: int = 64) -> tuple[npt.NDArray[np.float32], list[str]]:
    """Unit-norm multi-hot over the ``max_tokens`` most frequent category tokens (ties by name)."""
    tokens = categories.fillna("").astype(str).str.split(",")
    exploded = tokens.explode().str.strip()
    exploded = exploded[exploded != ""]
    counts = exploded.value_counts()
    vocab = sorted(counts.index, key=lambda t: (-int(counts[t]), t))[:max_tokens]
    col = pd.Index(vocab).get_indexer(exploded.to_numpy())
    rows = exploded.index.to_numpy()[col >= 0]
    mat = np.zeros((len(categories), len(vocab)), dtype=np.float32)
    mat[rows, col[col >= 0]] = 1.0
    norm = np.linalg.norm(mat, axis=1, keepdims=True)
    return mat / np.maximum(norm, 1.0), vocab


def _osm_block(path: Path, ids: pd.Series) -> tuple[npt.NDArray[np.float32], list[str]]:
    """Standardised log1p OSM features aligned to ``ids``; places missing from the table get zeros (the mean)."""
    feats = artifacts.read_table(path, dtype={"business_id": str, "item_id": str})
    key = next((k for k in ("business_id", "item_id") if k in feats.columns), None)
    if key is None:
        raise DataError("feature table needs a business_id or item_id column", path=path, column="business_id")
    cols = [c for c in feats.columns if c != key and pd.api.types.is_numeric_dtype(feats[c])]
    if not cols:
        raise DataError("feature table has no numeric columns", path=path)
    table = feats.drop_duplicates(key).set_index(key)[cols]
    aligned = table.reindex(ids.to_numpy())
    missing = aligned.isna().all(axis=1).to_numpy()
    if missing.any():
        example = ids.iloc[int(np.flatnonzero(missing)[0])]
        warnings.warn(f"{path}: {int(missing.sum())} places have no features (e.g. {example!r}); they get average "
                      "context", GeotowerWarning, stacklevel=3)
    x = np.log1p(np.clip(aligned.to_numpy(dtype=np.float64), 0.0, None))
    mean, std = np.nanmean(x, axis=0), np.nanstd(x, axis=0)
    z = np.where(std > 0, (x - mean) / np.where(std > 0, std, 1.0), 0.0)
    return np.nan_to_num(z).astype(np.float32), cols


def project(lat: npt.ArrayLike, lon: npt.ArrayLike, origin: tuple[float, float]) -> npt.NDArray[np.float64]:
    """Equirectangular projection to km around ``origin`` (lat0, lon0); accurate at city scale."""
    return local_xy_km(lat, lon, origin)


def build_places(places: pd.DataFrame, cfg: SimConfig, rng: np.random.Generator,
                 features: Path | None = None) -> _Places:
    """Item vectors and Zipf-like quality for every place."""
    origin = (float(places["lat"].mean()), float(places["lon"].mean()))
    cat, vocab = _category_block(places["categories"])
    latent = rng.standard_normal((len(places), cfg.n_latent)).astype(np.float32)
    blocks = {"categories": vocab, "latent": [f"z{k}" for k in range(cfg.n_latent)], "osm": []}
    parts = [cat, latent]
    if features is not None:
        osm, cols = _osm_block(features, places["business_id"])
        parts.append(osm)
        blocks["osm"] = cols
    score = rng.standard_normal(len(places))
    if "stars" in places.columns:
        stars = pd.to_numeric(places["stars"], errors="coerce").to_numpy(dtype=float)
        if np.isfinite(stars).any() and np.nanstd(stars) > 0:
            score += cfg.stars_weight * np.nan_to_num((stars - np.nanmean(stars)) / np.nanstd(stars))
    rank = np.empty(len(places))
    rank[np.argsort(-score, kind="stable")] = np.arange(1, len(places) + 1)
    q = -cfg.zipf_exponent * np.log(rank)
    return _Places(places, project(places["lat"], places["lon"], origin), np.concatenate(parts, axis=1),
                   (q - q.mean()).astype(np.float32), blocks, origin)


def _review_counts(m: int, cfg: SimConfig, cap: int, rng: np.random.Generator) -> npt.NDArray[np.int64]:
    """Heavy-tailed reviews per user summing to ``n_reviews``; every user has >= 1 and <= ``cap``."""
    n = cfg.n_reviews
    if m > n or m * cap < n:
        raise ConfigError(f"simulate: {m} users cannot write {n} reviews with 1..{cap} each; change --users")
    weights = rng.lognormal(0.0, cfg.activity_sigma, m)
    counts = 1 + rng.multinomial(n - m, weights / weights.sum()).astype(np.int64)
    for _ in range(100):  # move the excess of capped users to the others, proportionally to activity
        excess = int(np.clip(counts - cap, 0, None).sum())
        if excess == 0:
            break
        counts = np.minimum(counts, cap)
        free = np.where(counts < cap, weights, 0.0)
        counts += rng.multinomial(excess, free / free.sum())
    return counts


def _ids(rng: np.random.Generator, n: int) -> npt.NDArray[np.str_]:
    """Yelp-like 22-character ids over [A-Za-z0-9-_] (64^22 values: collisions are practically impossible)."""
    codes = _ID_ALPHABET[rng.integers(0, 64, (n, 22), dtype=np.uint8)]  # (n, 22) ASCII bytes
    return np.ascontiguousarray(codes).view("S22").ravel().astype(str)


def build_users(pl: _Places, cfg: SimConfig, cap: int, rng: np.random.Generator) -> _Users:
    """Homes from a neighbourhood mixture, tastes, decay, bias, activity and active periods."""
    m, d = cfg.users(), pl.vec.shape[1]
    centres = pl.xy[rng.integers(0, len(pl.xy), cfg.n_neighbourhoods)]
    hood = rng.choice(cfg.n_neighbourhoods, size=m, p=rng.dirichlet(np.ones(cfg.n_neighbourhoods)))
    xy = centres[hood] + rng.normal(0.0, cfg.home_spread_km, (m, 2))
    n_cat, n_lat = len(pl.blocks["categories"]), len(pl.blocks["latent"])
    scale = np.full(d, cfg.osm_scale / np.sqrt(max(1, d - n_cat - n_lat)), dtype=np.float32)
    scale[:n_cat] = cfg.category_scale
    scale[n_cat:n_cat + n_lat] = cfg.latent_scale / np.sqrt(n_lat)
    taste = (rng.standard_normal((m, d)) * scale).astype(np.float32)
    decay = (cfg.decay_per_km * rng.lognormal(0.0, cfg.decay_sigma, m)).astype(np.float32)
    bias = rng.normal(0.0, cfg.rating_bias_sd, m).astype(np.float32)
    span, g = cfg.years * 365.25 * 86400, cfg.growth_per_year / (365.25 * 86400)
    join = np.log1p(rng.random(m) * np.expm1(g * span)) / g  # inverse CDF of density ∝ exp(g t) on [0, span]
    stay = rng.exponential(cfg.mean_active_years * 365.25 * 86400, m)
    t0 = int(pd.Timestamp(cfg.start, tz="UTC").timestamp())
    leave = np.minimum(join + stay, span)
    counts = _review_counts(m, cfg, cap, rng)
    return _Users(_ids(rng, m), xy, taste, decay, bias, (t0 + join).astype(np.int64), (t0 + leave).astype(np.int64),
                  counts)


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


def choose_batch(pl: _Places, us: _Users, rows: _Ints, tree: cKDTree, cfg: SimConfig,
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


def _review_frame(pl: _Places, us: _Users, user_row: npt.NDArray[np.int64], item: npt.NDArray[np.int64],
                  stars: npt.NDArray[np.int64], rng: np.random.Generator) -> pd.DataFrame:
    n = len(item)
    t = us.join[user_row] + (rng.random(n) * (us.leave[user_row] - us.join[user_row])).astype(np.int64)
    dates = pd.Series(pd.to_datetime(t, unit="s").strftime("%Y-%m-%d %H:%M:%S"))
    useful, funny, cool = (rng.poisson(lam, n) for lam in (0.8, 0.2, 0.3))
    return pd.DataFrame({"review_id": _ids(rng, n), "user_id": us.ids[user_row],
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


def _business_frame(pl: _Places, n: npt.NDArray[np.int64], total: npt.NDArray[np.float64]) -> pd.DataFrame:
    t = pl.table
    given = pd.to_numeric(t["stars"], errors="coerce").to_numpy(float) if "stars" in t else np.full(len(t), np.nan)
    mean = np.divide(total, n, out=np.full(len(t), np.nan), where=n > 0)
    stars = np.where(n > 0, np.round(mean * 2) / 2, np.nan_to_num(given, nan=3.0))
    city = t["city"].astype(object) if "city" in t else ""
    return pd.DataFrame({"business_id": t["business_id"], "name": t["name"], "address": "", "city": city,
                         "state": "", "postal_code": "", "latitude": t["lat"], "longitude": t["lon"],
                         "stars": stars.astype(float), "review_count": n, "is_open": 1, "attributes": None,
                         "categories": yelp_categories(t["categories"]), "hours": None})


def _fixed_list(mat: npt.NDArray[np.float32]) -> pa.Array:
    return pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(mat, np.float32).ravel()), mat.shape[1])


def _write_parquet(path: Path, table: pa.Table) -> None:
    artifacts.write_with(path, lambda p: pq.write_table(table, p))


def write_ground_truth(out: Path, pl: _Places, us: _Users, cfg: SimConfig) -> None:
    """users.parquet, items.parquet, meta.json and a README describing the model's exact parameters."""
    gt = out / "ground_truth"
    home_lat, home_lon = local_latlon(us.xy, pl.origin)
    _write_parquet(gt / "users.parquet", pa.table({
        "user_id": us.ids, "home_lat": home_lat, "home_lon": home_lon, "decay_per_km": us.decay,
        "rating_bias": us.bias, "join": us.join, "leave": us.leave, "n_reviews": us.counts,
        "taste": _fixed_list(us.taste)}))
    _write_parquet(gt / "items.parquet", pa.table({
        "item_id": pl.table["business_id"].to_numpy().astype(str), "lat": pl.table["lat"].to_numpy(),
        "lon": pl.table["lon"].to_numpy(), "quality": pl.quality, "vec": _fixed_list(pl.vec)}))
    artifacts.write_json(gt / "meta.json", {"origin": list(pl.origin), "blocks": pl.blocks, "config": asdict(cfg),
                                            "star_cuts": list(STAR_CUTS)})
    artifacts.write_text(gt / "README", GROUND_TRUTH_README)


GROUND_TRUTH_README = """Ground truth of a geotower simulation (see docs/simulator.md).
users.parquet: user_id, home_lat, home_lon, decay_per_km (g_u), rating_bias (b_u), join/leave (epoch s),
  n_reviews, taste (t_u, fixed-size float32 list, blocks in meta.json: categories | latent | osm).
items.parquet: item_id (= business_id), lat, lon, quality (q_i), vec (v_i, same blocks as taste).
Expected utility: U(u, i) = taste_u . vec_i + quality_i - decay_u * distance_km(home_u, item_i), distance in the
equirectangular projection around meta.json "origin"; choices are softmax(U) over candidates, without replacement.
geotower.ingest.simulate.ground_truth_scores(gt_dir, user_ids, item_ids) computes U.
"""


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


def ground_truth_scores(gt_dir: str | Path, user_ids: Sequence[str],
                        item_ids: Sequence[str]) -> npt.NDArray[np.float32]:
    """The simulator's expected (noise-free) choice utility ``U(u, i)`` for every pair, e.g. for an oracle NDCG.

    Args:
        gt_dir: the ``ground_truth`` folder written by :func:`simulate`.
        user_ids: (n_u,) simulated user ids.
        item_ids: (n_i,) business ids.

    Returns:
        (n_u, n_i) float32 utilities; higher = more likely to be chosen.

    Raises:
        DataError: an id that is not in the ground truth, naming the file and the id.
    """
    gt = Path(gt_dir)
    meta = artifacts.read_json(gt / "meta.json")
    users, items = pq.read_table(gt / "users.parquet"), pq.read_table(gt / "items.parquet")
    u = _positions(users.column("user_id").to_numpy(), user_ids, gt / "users.parquet", "user_id")
    i = _positions(items.column("item_id").to_numpy(), item_ids, gt / "items.parquet", "item_id")
    taste, vec = _matrix(users, "taste")[u], _matrix(items, "vec")[i]
    origin = (float(meta["origin"][0]), float(meta["origin"][1]))
    home = project(users.column("home_lat").to_numpy()[u], users.column("home_lon").to_numpy()[u], origin)
    place = project(items.column("lat").to_numpy()[i], items.column("lon").to_numpy()[i], origin)
    dist = np.linalg.norm(home[:, None, :] - place[None, :, :], axis=2)  # (n_u, n_i) km
    decay = users.column("decay_per_km").to_numpy()[u]
    util: np.ndarray = taste @ vec.T + items.column("quality").to_numpy()[i][None, :] - decay[:, None] * dist
    return util.astype(np.float32)


def _matrix(table: pa.Table, column: str) -> npt.NDArray[np.float32]:
    col = table.column(column).combine_chunks()
    flat: np.ndarray = col.flatten().to_numpy()
    return flat.reshape(len(col), -1).astype(np.float32)


def _positions(known: npt.NDArray[np.object_], wanted: Sequence[str], path: Path, column: str) -> npt.NDArray[np.int64]:
    pos: np.ndarray = pd.Index(known).get_indexer(np.asarray(wanted, dtype=object))
    if (pos < 0).any():
        bad = np.asarray(wanted, dtype=object)[pos < 0]
        raise DataError(f"{len(bad)} unknown ids, e.g. {bad[0]!r}", path=path, column=column)
    return pos.astype(np.int64)

