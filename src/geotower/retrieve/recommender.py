"""Recommendation logic shared by the ``recommend`` command and the web service (numpy only, no torch).

A :class:`Recommender` holds the catalog (trained items plus items added later from features only), the user
embeddings, the train-seen matrix and an index. One call answers one query: a known user ranks by their embedding, an
unknown user with liked items ranks by a cold-start embedding (a callable injected by the caller, normally the user
tower of the model bundle), and no user falls back to popularity with a note. A radius query first collects every
item inside the radius (:class:`GeoFilter`) and ranks exactly among those, so K results come back whenever K exist.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from geotower import schema as S
from geotower.errors import DataError, GeotowerWarning
from geotower.retrieve.catalog import BundleLike, Catalog, load_catalog, with_none
from geotower.retrieve.geo_filter import GeoFilter, haversine_km
from geotower.retrieve.index import ExactIndex, FloatArray, IntArray, Retriever
from geotower.retrieve.index_build import build_index
from geotower.retrieve.index_store import load_index, read_index_meta

MAX_K = 1000
EXACT_CANDIDATES_MAX = 20_000  # above this many geo candidates an ANN index searches them with an id selector


class UnknownIdError(DataError):
    """A user or item id that the run does not know (the service answers 404)."""


class ExplainerLike(Protocol):
    """What :class:`Recommender` asks of ``retrieve.explain.Explainer`` (kept apart: that one imports torch)."""

    def explain(self, q: np.ndarray, rows: np.ndarray, scores: np.ndarray, history: np.ndarray,
                user_row: int | None, distance_km: np.ndarray | None, names: np.ndarray | None,
                item_ids: np.ndarray) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class Query:
    """One recommendation request. ``near`` is (lat, lon); ``radius_km`` requires ``near``."""

    user_id: str | None = None
    liked: tuple[str, ...] = ()
    k: int = 10
    near: tuple[float, float] | None = None
    radius_km: float | None = None
    exclude_seen: bool = True


@dataclass(frozen=True)
class Recommendation:
    """Ranked catalog rows with scores; ``distance_km`` is set when the query had a point."""

    rows: IntArray
    scores: FloatArray
    distance_km: npt.NDArray[np.float64] | None
    mode: str  # "user", "cold_start" or "popularity"
    note: str | None = None
    qvec: FloatArray | None = None  # the query embedding (None for popularity), kept for explanations
    history: IntArray | None = None  # catalog rows the query embedding pooled (liked / train-seen places)
    user_row: int | None = None


def validate_query(query: Query) -> None:
    """Range checks shared by the CLI and the library (the service checks the same ranges with pydantic).

    Raises:
        DataError: naming the bad value.
    """
    if not 1 <= query.k <= MAX_K:
        raise DataError(f"k must be in [1, {MAX_K}], got {query.k}", column="k")
    if query.near is not None:
        lat, lon = query.near
        if not (math.isfinite(lat) and -90.0 <= lat <= 90.0):
            raise DataError(f"latitude must be in [-90, 90], got {lat}", column="lat")
        if not (math.isfinite(lon) and -180.0 <= lon <= 180.0):
            raise DataError(f"longitude must be in [-180, 180], got {lon}", column="lon")
    if query.radius_km is not None:
        if query.near is None:
            raise DataError("a radius needs a point (lat, lon)", column="radius_km")
        if not (math.isfinite(query.radius_km) and query.radius_km > 0):
            raise DataError(f"radius_km must be a finite number > 0, got {query.radius_km}", column="radius_km")


class Recommender:
    """Answers :class:`Query` objects over one catalog.

    Args:
        catalog: items in embedding-row order.
        user_ids, user_emb: (n_users,) and (n_users, d) trained users.
        seen: (n_users, n_trained) CSR of train-seen items.
        index: a :class:`Retriever` over ``catalog.emb``.
        embed_liked: cold-start embedding from liked (trained) item ids; None disables cold start.
    """

    def __init__(self, catalog: Catalog, user_ids: np.ndarray, user_emb: FloatArray, seen: sp.csr_matrix,
                 index: Retriever, embed_liked: Callable[[Sequence[str]], np.ndarray] | None = None,
                 explainer: ExplainerLike | None = None) -> None:
        self.catalog = catalog
        self.explainer = explainer  # a geotower.retrieve.explain.Explainer; None: answers carry no reasons
        self.user_ids = np.asarray(user_ids).astype(str)
        self.user_emb = np.asarray(user_emb, dtype=np.float32)
        self.seen = sp.csr_matrix(seen)
        self.index = index
        self.embed_liked = embed_liked
        self.geo = GeoFilter(catalog.lats, catalog.lons)
        self._exact = index if isinstance(index, ExactIndex) else ExactIndex(catalog.emb)
        self._user_row = {u: i for i, u in enumerate(self.user_ids)}
        self._item_row = {it: i for i, it in enumerate(catalog.item_ids)}
        pop_order = np.argsort(-catalog.popularity, kind="stable")  # ties: lower row first
        self._pop_rank = np.empty(len(pop_order), dtype=np.int64)
        self._pop_rank[pop_order] = np.arange(len(pop_order))

    @property
    def n_items(self) -> int:
        return len(self.catalog.item_ids)

    def user_row(self, user_id: str) -> int | None:
        return self._user_row.get(user_id)

    def item_rows(self, item_ids: Sequence[str]) -> IntArray:
        """Catalog rows of ``item_ids``; raises :class:`UnknownIdError` naming every unknown id."""
        rows = [self._item_row.get(i, -1) for i in item_ids]
        unknown = [i for i, r in zip(item_ids, rows, strict=True) if r < 0]
        if unknown:
            raise UnknownIdError(f"unknown item id(s): {', '.join(map(repr, unknown[:10]))}", column=S.ITEM_ID)
        return np.asarray(rows, dtype=np.int64)

    def recommend(self, query: Query) -> Recommendation:
        """Rank the catalog for one query (see the module docstring for the modes)."""
        validate_query(query)
        liked = self.item_rows(query.liked) if query.liked else np.zeros(0, dtype=np.int64)
        cand, cand_dist = (None, None)
        if query.near is not None and query.radius_km is not None:
            cand, cand_dist = self.geo.within(query.near[0], query.near[1], query.radius_km)
        user = self.user_row(query.user_id) if query.user_id is not None else None
        qvec, mode, note, exclude = self._query_vector(query, user, liked)
        if qvec is None:
            rows, scores = self._popular(query.k, cand, exclude)
        else:
            rows, scores = self._rank(qvec, query.k, cand, exclude)
        if query.radius_km is not None and cand is not None and len(cand) == 0:
            note = ((note + "; ") if note else "") + f"no places within {query.radius_km:g} km"
        history = liked if user is None else np.union1d(
            self.seen.indices[self.seen.indptr[user]:self.seen.indptr[user + 1]], liked).astype(np.int64)
        return Recommendation(rows, scores, self._distances(query, rows, cand, cand_dist), mode, note=note,
                              qvec=qvec, history=history, user_row=user)

    def _query_vector(self, query: Query, user: int | None, liked: IntArray
                      ) -> tuple[FloatArray | None, str, str | None, IntArray]:
        """(query embedding or None for popularity, mode, note, rows to exclude)."""
        if user is not None:
            seen = self.seen.indices[self.seen.indptr[user]:self.seen.indptr[user + 1]]
            exclude = np.union1d(seen if query.exclude_seen else np.zeros(0, np.int64), liked).astype(np.int64)
            return self.user_emb[user], "user", None, exclude
        who = f"user {query.user_id!r} is unknown" if query.user_id is not None else "no user given"
        if len(liked):
            trained = liked[liked < self.catalog.n_trained]
            if self.embed_liked is not None and len(trained):
                vec = np.asarray(self.embed_liked(list(self.catalog.item_ids[trained])), dtype=np.float32)
                return vec.reshape(-1), "cold_start", None, np.unique(liked)
            why = "no cold-start model loaded" if self.embed_liked is None else "no liked item was trained on"
            return None, "popularity", f"{who} and {why}: most popular places", np.unique(liked)
        return None, "popularity", f"{who}: most popular places (give liked items for a personal ranking)", liked

    def _rank(self, qvec: FloatArray, k: int, cand: IntArray | None, exclude: IntArray
              ) -> tuple[IntArray, FloatArray]:
        """Top-k by dot product among ``cand`` (all items when None), never returning ``exclude``."""
        q = qvec.reshape(1, -1)
        use_exact = isinstance(self.index, ExactIndex) or (cand is not None and len(cand) <= EXACT_CANDIDATES_MAX)
        if use_exact:
            scores, rows = self._exact.search(q, k, include=cand, exclude=exclude)
        else:
            scores, rows = self.index.search(q, k, include=cand, exclude=exclude)
            in_pool = len(exclude) if cand is None else int(np.isin(exclude, cand).sum())
            eligible = (self.n_items if cand is None else len(cand)) - in_pool
            if int((rows >= 0).sum()) < min(k, eligible):  # ANN came back short: answer exactly
                scores, rows = self._exact.search(q, k, include=cand, exclude=exclude)
        ok = rows[0] >= 0
        return rows[0][ok], scores[0][ok]

    def _popular(self, k: int, cand: IntArray | None, exclude: IntArray) -> tuple[IntArray, FloatArray]:
        """Most popular items among ``cand`` (all when None), ties by lower row."""
        pool = np.arange(self.n_items) if cand is None else cand
        if len(exclude):
            pool = pool[~np.isin(pool, exclude)]
        ranks = self._pop_rank[pool]
        kk = min(k, len(pool))
        if kk == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        top = np.argpartition(ranks, kk - 1)[:kk] if kk < len(pool) else np.arange(len(pool))
        rows = pool[top[np.argsort(ranks[top])]].astype(np.int64)
        return rows, self.catalog.popularity[rows].astype(np.float32)

    def _distances(self, query: Query, rows: IntArray, cand: IntArray | None,
                   cand_dist: npt.NDArray[np.float64] | None) -> npt.NDArray[np.float64] | None:
        if query.near is None:
            return None
        if cand is not None and cand_dist is not None:
            return cand_dist[np.searchsorted(cand, rows)]
        return haversine_km(query.near[0], query.near[1], self.catalog.lats[rows], self.catalog.lons[rows])

    def records(self, result: Recommendation, explain: bool = False) -> list[dict[str, Any]]:
        """Public rows of a result: ``item_id, score, name, lat, lon, distance_km`` (None where unknown), plus
        ``reasons`` with ``explain`` (see :mod:`geotower.retrieve.explain`)."""
        c, rows = self.catalog, result.rows
        lats, lons = c.lats[rows], c.lons[rows]
        dist = result.distance_km if result.distance_km is not None else np.full(len(rows), np.nan)
        names = c.names[rows].tolist() if c.names is not None else [None] * len(rows)
        cols = zip(c.item_ids[rows].tolist(), result.scores.astype(float).tolist(), names,
                   with_none(lats, np.isfinite(lats)).tolist(), with_none(lons, np.isfinite(lons)).tolist(),
                   with_none(dist, np.isfinite(dist)).tolist(), strict=True)
        keys = ("item_id", "score", "name", "lat", "lon", "distance_km")
        out = [dict(zip(keys, values, strict=True)) for values in cols]
        if explain:
            for row, reasons in zip(out, self.reasons(result), strict=True):
                row["reasons"] = reasons
        return out

    def reasons(self, result: Recommendation) -> list[dict[str, Any]]:
        """Why each result was ranked: liked places, distance and surroundings features (see ``explain``)."""
        dist = result.distance_km
        if result.qvec is None or self.explainer is None:
            why = "most popular places" if result.qvec is None else "no explainer loaded"
            return [{"exact": False, "liked": [], "features": [], "popularity": None, "text": why,
                     "distance_km": None if dist is None else round(float(dist[i]), 3)}
                    for i in range(len(result.rows))]
        history = result.history if result.history is not None else np.zeros(0, np.int64)
        return self.explainer.explain(result.qvec, result.rows, result.scores, history, result.user_row,
                                      distance_km=dist, names=self.catalog.names, item_ids=self.catalog.item_ids)

    def item_record(self, row: int) -> dict[str, Any]:
        """Public fields of one catalog row (None where unknown)."""
        c = self.catalog
        lat, lon = float(c.lats[row]), float(c.lons[row])
        return {"item_id": str(c.item_ids[row]), "name": None if c.names is None else c.names[row],
                "lat": lat if math.isfinite(lat) else None, "lon": lon if math.isfinite(lon) else None,
                "popularity": float(c.popularity[row]), "trained": bool(row < c.n_trained)}


def open_recommender(bundle: BundleLike, run_dir: str | Path, exact_max_items: int = 50_000,
                     explain: bool = True) -> Recommender:
    """Catalog + saved index of a run; without a saved index, an in-memory one (with a warning).

    Raises:
        ArtifactError: the saved index does not match the catalog's embeddings.
    """
    catalog = load_catalog(bundle, run_dir)
    if read_index_meta(run_dir) is not None:
        index, _ = load_index(run_dir, catalog.emb)
    else:
        index = build_index(catalog.emb, "auto", exact_max_items)
        if index.kind != "flat":
            warnings.warn(f"no saved index in {run_dir}; built a {index.kind} index in memory "
                          f"(save one with: geotower index {run_dir})", GeotowerWarning, stacklevel=2)
    explainer = None
    if explain and hasattr(bundle, "model"):
        from geotower.retrieve.explain import Explainer

        explainer = Explainer(bundle)
    return Recommender(catalog, bundle.user_ids, bundle.user_emb, bundle.seen, index, embed_liked=bundle.embed_liked,
                       explainer=explainer)
