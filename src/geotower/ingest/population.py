"""The simulator's population: places with item vectors and quality, diners with homes, tastes and activity.

``build_places`` turns a places table (and optionally its OSM context) into the item vectors ``v_i = [c_i, z_i,
f_i]`` and Zipf-like qualities ``q_i``; ``build_users`` draws each diner's home, taste, distance decay, rating bias,
activity and active period (docs/simulator.md gives the model). Both draw from one Generator in a fixed order, so a
seed gives the same population; :mod:`geotower.ingest.simulate` then draws the diners' choices.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from geotower import artifacts
from geotower.errors import ConfigError, DataError, GeotowerWarning
from geotower.schema import local_xy_km

STAR_CUTS = (-0.4, 0.1, 0.6, 1.4)  # satisfaction → 1..5 stars; gives about 10/8/12/25/45 % (Yelp-like)
_ID_ALPHABET = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", dtype=np.uint8)


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
class Places:
    """Places in local km with their item vectors; ``vec`` = [categories | latent | osm] blocks."""

    table: pd.DataFrame  # business_id, name, lat, lon, categories[, stars, city]
    xy: npt.NDArray[np.float64]  # (n, 2) km
    vec: npt.NDArray[np.float32]  # (n, D)
    quality: npt.NDArray[np.float32]  # (n,)
    blocks: dict[str, list[str]]
    origin: tuple[float, float]  # (lat0, lon0)


@dataclass
class Diners:
    ids: npt.NDArray[np.str_]
    xy: npt.NDArray[np.float64]  # (m, 2) km
    taste: npt.NDArray[np.float32]  # (m, D)
    decay: npt.NDArray[np.float32]  # (m,)
    bias: npt.NDArray[np.float32]  # (m,)
    join: npt.NDArray[np.int64]  # (m,) epoch seconds
    leave: npt.NDArray[np.int64]  # (m,) epoch seconds
    counts: npt.NDArray[np.int64]  # (m,) reviews per user


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
                 features: Path | None = None) -> Places:
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
    return Places(places, project(places["lat"], places["lon"], origin), np.concatenate(parts, axis=1),
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


def yelp_ids(rng: np.random.Generator, n: int) -> npt.NDArray[np.str_]:
    """Yelp-like 22-character ids over [A-Za-z0-9-_] (64^22 values: collisions are practically impossible)."""
    codes = _ID_ALPHABET[rng.integers(0, 64, (n, 22), dtype=np.uint8)]  # (n, 22) ASCII bytes
    return np.ascontiguousarray(codes).view("S22").ravel().astype(str)


def build_users(pl: Places, cfg: SimConfig, cap: int, rng: np.random.Generator) -> Diners:
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
    return Diners(yelp_ids(rng, m), xy, taste, decay=decay, bias=bias, join=(t0 + join).astype(np.int64),
                  leave=(t0 + leave).astype(np.int64), counts=counts)
