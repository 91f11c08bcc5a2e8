"""Maximum-inner-product search over item embeddings: one ``Retriever`` protocol, an exact and a FAISS implementation.

``ExactIndex`` is a plain matmul + partial sort and is the reference everything else is measured against.
``FaissIndex`` wraps a FAISS flat / HNSW / IVF index; a candidate subset or an exclusion set is passed as a FAISS
``IDSelectorBitmap``, so filtering happens inside the search rather than after it. A built index is saved
in the run folder by :mod:`geotower.retrieve.index_store`.
This module is numpy/FAISS only; FAISS is imported lazily.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from geotower.errors import ConfigError

KINDS = ("auto", "flat", "hnsw", "ivf")
FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


class Retriever(Protocol):
    """Top-K inner-product search over a fixed, growable set of item vectors (row i = item i)."""

    kind: str

    @property
    def n_items(self) -> int: ...

    def add(self, emb: FloatArray) -> None: ...

    def search(self, queries: FloatArray, k: int, include: IntArray | None = None,
               exclude: IntArray | None = None) -> tuple[FloatArray, IntArray]: ...


def import_faiss() -> Any:
    """The faiss module (imported on first use), or a ConfigError with the install hint."""
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss-cpu is a core dependency
        raise ConfigError("FAISS is needed for hnsw/ivf indexes: pip install faiss-cpu") from exc
    return faiss


def order_by_score(ids: npt.NDArray[np.integer], scores: npt.NDArray[np.floating]) -> IntArray:
    """The one tie rule of every ranking: each row of ``ids`` ordered by score descending, then by lower id.

    Args:
        ids: (b, k) item ids; scores: (b, k) their scores.
    """
    order = np.lexsort((ids, -scores), axis=1)  # by score desc, then index asc
    return np.take_along_axis(ids, order, axis=1).astype(np.int64)


def exact_topk(scores: npt.NDArray[np.floating], k: int) -> IntArray:
    """(b, k) indices of the K best NaN-free scores of each row, best first, ties to the lower index.

    ``argpartition`` picks an arbitrary member of a tie at the K-th place; rows with such a boundary tie are
    resolved exactly (all at once, vectorised), so the result never depends on the library version.
    """
    b, n = scores.shape
    cand = np.argpartition(-scores, k - 1, axis=1)[:, :k]  # (b, k) unordered, boundary ties arbitrary
    cand_scores = np.take_along_axis(scores, cand, axis=1)
    kth = cand_scores.min(axis=1)  # (b,) the K-th best value
    n_ge = (scores >= kth[:, None]).sum(axis=1)  # more than k items reach it => a tie straddles the boundary
    tied = np.flatnonzero(n_ge > k)
    if len(tied):
        cand[tied] = _resolve_ties(scores[tied], kth[tied], k)
        cand_scores[tied] = np.take_along_axis(scores[tied], cand[tied], axis=1)
    return order_by_score(cand, cand_scores)


def _resolve_ties(scores: npt.NDArray[np.floating], kth: npt.NDArray[np.floating], k: int) -> npt.NDArray[np.int64]:
    """For rows whose K-th value is tied: all items above it plus the lowest-index tied items up to K."""
    above = scores > kth[:, None]  # (t, n)
    equal = scores == kth[:, None]
    need = k - above.sum(axis=1)  # (t,) how many tied items fit
    take_equal = equal & (np.cumsum(equal, axis=1) <= need[:, None])
    rows, cols = np.nonzero(above | take_equal)  # exactly k per row, row-major order
    return cols.reshape(len(scores), k)


def topk_rows(scores: FloatArray, k: int) -> tuple[FloatArray, IntArray]:
    """Best ``k`` columns of each row, best first; ``-inf`` entries come back as id -1.

    Args:
        scores: (b, n) scores.

    Returns:
        ((b, k) scores, (b, k) column ids); padded with (-inf, -1) when n < k.
    """
    b, n = scores.shape
    kk = min(k, n)
    if kk == 0:
        return np.full((b, k), -np.inf, dtype=np.float32), np.full((b, k), -1, dtype=np.int64)
    part = _best_unordered(scores, kk)
    ids = order_by_score(part, np.take_along_axis(scores, part, axis=1))
    top = np.take_along_axis(scores, ids, axis=1).astype(np.float32)
    ids[np.isneginf(top)] = -1
    if kk < k:
        top = np.pad(top, ((0, 0), (0, k - kk)), constant_values=-np.inf)
        ids = np.pad(ids, ((0, 0), (0, k - kk)), constant_values=-1)
    return top, ids


def _best_unordered(scores: FloatArray, kk: int) -> npt.NDArray[np.intp]:
    """(b, kk) columns holding each row's ``kk`` best scores, in no order (a tie at the boundary: any member).

    A single query (the serving path) partitions its row as a 1-d array, without the 2-d partition's overhead.
    """
    b, n = scores.shape
    if kk == n:
        return np.tile(np.arange(n), (b, 1))
    if b == 1:
        return np.argpartition(-scores[0], kk - 1)[:kk][None, :]
    return np.argpartition(-scores, kk - 1, axis=1)[:, :kk]


def _scores(queries: FloatArray, emb: FloatArray) -> FloatArray:
    """(b, n) inner products. One query goes through einsum, not BLAS: a multi-threaded BLAS gemv on a busy
    server spends far longer synchronising threads than computing (measured 24 ms vs 0.3 ms for 5,851 x 128)."""
    if len(queries) == 1:
        one: FloatArray = np.einsum("nd,d->n", emb, queries[0])
        return one[None, :]
    return queries @ emb.T


class ExactIndex:
    """Exact search: ``emb @ q`` then a partial sort. Fast up to tens of thousands of items.

    Args:
        emb: (n_items, d) float32 item embeddings.
    """

    kind = "flat"

    def __init__(self, emb: FloatArray) -> None:
        self.emb = np.ascontiguousarray(emb, dtype=np.float32)

    @property
    def n_items(self) -> int:
        return len(self.emb)

    def add(self, emb: FloatArray) -> None:
        self.emb = np.concatenate([self.emb, np.asarray(emb, dtype=np.float32)])

    def search(self, queries: FloatArray, k: int, include: IntArray | None = None,
               exclude: IntArray | None = None) -> tuple[FloatArray, IntArray]:
        """Top-k items per query, restricted to ``include`` rows and never returning ``exclude`` rows.

        Args:
            queries: (b, d) float32.
            include: candidate rows (ascending); None = all items.
            exclude: rows that must not be returned (e.g. items the user has seen).

        Returns:
            ((b, k) scores, (b, k) item rows), padded with (-inf, -1) when fewer than k items qualify.
        """
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        rows = np.arange(self.n_items) if include is None else np.asarray(include, dtype=np.int64)
        emb = self.emb if include is None else self.emb[rows]
        scores = _scores(queries, emb)  # (b, n_candidates)
        if exclude is not None and len(exclude):
            mask = np.isin(rows, exclude, assume_unique=False) if include is not None else np.asarray(exclude)
            scores[:, mask] = -np.inf
        top, local = topk_rows(scores, k)
        ids = np.where(local >= 0, rows[np.maximum(local, 0)], -1) if len(rows) else local
        return top, ids


class FaissIndex:
    """A FAISS inner-product index (flat, HNSW or IVF) whose ids are catalog rows.

    HNSW searches inner products through the usual reduction to nearest neighbours (Bachrach et al. 2014): each item
    gets one more coordinate ``sqrt(max_norm^2 - |x|^2)`` so every item has the norm ``max_norm``, a query gets 0,
    and the L2 order is then the inner-product order. Graph search over raw inner products handles items of
    different norms badly (the retrieval embeddings are not unit vectors: the prior column, ensemble members):
    recall@10 against exact search was 0.59 on the 1/16 Yelp-size run, 0.993 with the reduction.

    Args:
        kind: "flat", "hnsw" or "ivf".
        params: search/build parameters (hnsw: M, ef_construction, ef_search, max_norm; ivf: nlist, nprobe).
    """

    def __init__(self, kind: str, dim: int, params: dict[str, float] | None = None, index: Any = None) -> None:
        self.kind = kind
        self.dim = dim
        self.params = dict(params or {})
        self.index = index

    @property
    def n_items(self) -> int:
        return 0 if self.index is None else int(self.index.ntotal)

    def build(self, emb: FloatArray, seed: int = 0) -> FaissIndex:
        """Create and fill the FAISS index; IVF centroids are trained on a seeded sample of at most 64k rows."""
        faiss = import_faiss()
        emb = np.ascontiguousarray(emb, dtype=np.float32)
        n = len(emb)
        if self.kind == "flat":
            self.index = faiss.IndexFlatIP(self.dim)
        elif self.kind == "hnsw":
            self.params = {"M": 32, "ef_construction": 80, "ef_search": 96, **self.params}
            if self.params.pop("reduce", 1):  # L2 over the augmented vectors (see the class docstring)
                self.params["max_norm"] = float(np.linalg.norm(emb, axis=1).max()) if n else 0.0
                self.index = faiss.IndexHNSWFlat(self.dim + 1, int(self.params["M"]))
            else:
                self.params.pop("max_norm", None)
                self.index = faiss.IndexHNSWFlat(self.dim, int(self.params["M"]), faiss.METRIC_INNER_PRODUCT)
            self.index.hnsw.efConstruction = int(self.params["ef_construction"])
        elif self.kind == "ivf":
            nlist = int(np.clip(4 * np.sqrt(n), 1, max(1, n // 39)))
            self.params = {"nlist": nlist, "nprobe": min(nlist, max(16, nlist // 16)), **self.params}
            quantizer = faiss.IndexFlatIP(self.dim)
            self.index = faiss.IndexIVFFlat(quantizer, self.dim, int(self.params["nlist"]), faiss.METRIC_INNER_PRODUCT)
            rng = np.random.default_rng(seed)
            sample = emb[np.sort(rng.choice(n, size=min(n, 64 * 1024), replace=False))]
            self.index.cp.seed = seed
            self.index.train(sample)
        else:
            raise ConfigError(f"index kind {self.kind!r} is not one of flat, hnsw, ivf")
        self.index.add(self._items(emb))
        return self

    @property
    def _reduced(self) -> bool:
        """HNSW built with the inner-product -> L2 reduction (indexes saved before it have no ``max_norm``)."""
        return self.kind == "hnsw" and "max_norm" in self.params

    def _items(self, emb: FloatArray) -> FloatArray:
        emb = np.ascontiguousarray(emb, dtype=np.float32)
        if not self._reduced:
            return emb
        extra = np.sqrt(np.maximum(self.params["max_norm"] ** 2 - np.einsum("ij,ij->i", emb, emb), 0.0))
        return np.ascontiguousarray(np.hstack([emb, extra[:, None].astype(np.float32)]))

    def add(self, emb: FloatArray) -> None:
        """Append rows (new places); with the HNSW reduction, a row longer than every indexed one rebuilds the
        graph from the stored rows (the reduction needs the largest norm; new places are added rarely)."""
        emb = np.ascontiguousarray(emb, dtype=np.float32)
        if self._reduced and len(emb) and float(np.linalg.norm(emb, axis=1).max()) > self.params["max_norm"]:
            old = self.index.reconstruct_n(0, self.n_items)[:, :self.dim] if self.n_items else emb[:0]
            self.params = {k: v for k, v in self.params.items() if k != "max_norm"}
            self.build(np.vstack([old, emb]))
            return
        self.index.add(self._items(emb))

    def _search_params(self, k: int, sel: Any) -> Any:
        faiss = import_faiss()
        if self.kind == "hnsw":
            return faiss.SearchParametersHNSW(sel=sel, efSearch=max(int(self.params["ef_search"]), k))
        if self.kind == "ivf":
            return faiss.SearchParametersIVF(sel=sel, nprobe=int(self.params["nprobe"]))
        return faiss.SearchParameters(sel=sel) if sel is not None else None

    def search(self, queries: FloatArray, k: int, include: IntArray | None = None,
               exclude: IntArray | None = None) -> tuple[FloatArray, IntArray]:
        """Same contract as :meth:`ExactIndex.search`; approximate for hnsw/ivf, may return fewer than k."""
        faiss = import_faiss()
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        bitmap = _bitmap(self.n_items, include, exclude)
        sel = None if bitmap is None else faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap))
        kk = min(k, self.n_items)
        if self._reduced:  # nearest augmented vectors; their scores are the exact inner products of the stored rows
            q = np.hstack([queries, np.zeros((len(queries), 1), np.float32)])
            _, ids = self.index.search(q, kk, params=self._search_params(kk, sel))
            rows = self.index.reconstruct_batch(np.maximum(ids, 0).ravel()).reshape(*ids.shape, -1)[..., :self.dim]
            scores = np.einsum("qd,qkd->qk", queries, rows)
        else:
            scores, ids = self.index.search(queries, kk, params=self._search_params(kk, sel))
        scores = np.where(ids >= 0, scores, -np.inf).astype(np.float32)
        if kk < k:
            scores = np.pad(scores, ((0, 0), (0, k - kk)), constant_values=-np.inf)
            ids = np.pad(ids, ((0, 0), (0, k - kk)), constant_values=-1)
        return scores, ids.astype(np.int64)


def _bitmap(n: int, include: IntArray | None, exclude: IntArray | None) -> npt.NDArray[np.uint8] | None:
    """Allowed rows as a little-endian bitmap (FAISS ``IDSelectorBitmap`` layout), or None when all are allowed."""
    if include is None and (exclude is None or len(exclude) == 0):
        return None
    mask = np.ones(n, dtype=bool) if include is None else np.zeros(n, dtype=bool)
    if include is not None:
        mask[include] = True
    if exclude is not None and len(exclude):
        mask[exclude] = False
    return np.packbits(mask, bitorder="little")
