"""Peer models for the quality benchmark, each tuned on the validation part: popularity, ALS, LightFM-WARP.

Every peer is fitted on ``task.train_pos`` only and scored through the same
``geotower.evaluate.metrics.evaluate_scorer`` call as geotower (see ``tasks.py``). LightFM is a benchmark-only
dependency (install notes in ``docs/quality.md``); it is imported lazily so the other peers run without it.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from geotower import schema as S
from geotower.evaluate.metrics import evaluate_scorer

from .tasks import Task

K = 10
Result = dict[str, Any]


def score_table(task: Task, user_vecs: np.ndarray, item_vecs: np.ndarray,
                item_bias: np.ndarray | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """Scorer ``users -> (b, n_items)`` = dot product (+ item bias), the form every factor model shares."""
    def score(users: np.ndarray) -> np.ndarray:
        s = user_vecs[users] @ item_vecs.T  # (b, n_items)
        return s if item_bias is None else s + item_bias[None, :]
    return score


def evaluate(task: Task, score: Callable[[np.ndarray], np.ndarray]) -> dict[str, float]:
    """Validation metrics at K=10 over the task's warm users, plus the standard errors of NDCG@10 and Recall@10."""
    from geotower.evaluate.stats import per_user, standard_error

    metrics = evaluate_scorer(score, task.users, task.relevant, task.seen, K)
    pu = per_user(score, task.users, task.relevant, task.seen, K)
    return {**metrics, "ndcg_se": standard_error(pu.ndcg), "recall_se": standard_error(pu.recall)}


def _row(model: str, params: dict[str, Any], metrics: dict[str, float], fit_s: float) -> Result:
    return {"model": model, "params": params, "ndcg": metrics["ndcg"], "ndcg_se": metrics["ndcg_se"],
            "recall": metrics["recall"], "recall_se": metrics.get("recall_se"), "users": metrics["users"],
            "fit_s": round(fit_s, 2)}


# --- popularity -----------------------------------------------------------------------------------------
def run_popularity(task: Task) -> list[Result]:
    """Rank by number of train positives (ties by lower index): the floor every model must clear."""
    t0 = time.perf_counter()
    pop = np.asarray((task.train_pos > 0).sum(axis=0)).ravel().astype(np.float32)
    fit_s = time.perf_counter() - t0
    metrics = evaluate(task, lambda users: np.broadcast_to(pop, (len(users), task.n_items)))
    return [_row("popularity", {}, metrics, fit_s)]


# --- ALS (implicit) -----------------------------------------------------------------------------------
def als_confidence(task: Task, scheme: str, alpha: float) -> sp.csr_matrix:
    """Confidence matrix: alpha x weight ("linear") or alpha x log1p(weight) ("log")."""
    conf = task.train_pos.copy()
    conf.data = alpha * (np.log1p(conf.data) if scheme == "log" else conf.data)
    return conf.astype(np.float32)


def fit_als(task: Task, factors: int, reg: float, alpha: float, scheme: str, iters: int = 20) -> tuple[Any, float]:
    from implicit.cpu.als import AlternatingLeastSquares

    conf = als_confidence(task, scheme, alpha)
    model = AlternatingLeastSquares(factors=factors, regularization=reg, iterations=iters, random_state=0,
                                    num_threads=2, calculate_training_loss=False)
    t0 = time.perf_counter()
    with threadpool_limits(1, "blas"):
        model.fit(conf, show_progress=False)
    return model, time.perf_counter() - t0


def run_als(task: Task, grid: dict[str, list[Any]]) -> list[Result]:
    """Grid over factors x regularisation x alpha x confidence scheme; one row per setting."""
    rows = []
    for factors, reg, alpha, scheme in itertools.product(grid["factors"], grid["reg"], grid["alpha"],
                                                         grid["scheme"]):
        model, fit_s = fit_als(task, factors, reg, alpha, scheme)
        metrics = evaluate(task, score_table(task, model.user_factors, model.item_factors))
        rows.append(_row("als", {"factors": factors, "reg": reg, "alpha": alpha, "scheme": scheme},
                         metrics, fit_s))
    return rows


# --- LightFM-WARP ---------------------------------------------------------------------------------------
def _one_hot(labels: pd.Series, prefix: str) -> tuple[sp.csr_matrix, list[str]]:
    """(n, n_labels) indicator matrix of a label column (one label per row; NaN -> no column)."""
    codes, uniques = pd.factorize(labels)
    rows = np.flatnonzero(codes >= 0)
    m = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, codes[rows])), shape=(len(labels), len(uniques)))
    return m, [f"{prefix}={u}" for u in uniques]


def movie_features(task: Task) -> sp.csr_matrix:
    """Identity + genres (multi-hot) + release year in 5-year and 10-year buckets, rows L1-normalised."""
    items = task.dataset.items
    genres = items["genres"].fillna("").str.split(" ")
    g_codes, g_uniques = pd.factorize(genres.explode())
    g_rows = np.repeat(np.arange(len(items)), genres.str.len())
    ok = g_codes >= 0
    gm = sp.csr_matrix((np.ones(ok.sum(), np.float32), (g_rows[ok], g_codes[ok])),
                       shape=(len(items), len(g_uniques)))
    year = pd.to_numeric(items["release_year"], errors="coerce")
    y5, _ = _one_hot((year // 5).astype("Int64").astype(str).where(year.notna()), "y5")
    y10, _ = _one_hot((year // 10).astype("Int64").astype(str).where(year.notna()), "y10")
    return _with_identity([gm, y5, y10])


def grid_cell_features(task: Task, cells_km: tuple[float, ...]) -> sp.csr_matrix:
    """Identity + one square grid cell per size (equirectangular metres around the mean latitude)."""
    items = task.dataset.items
    lat, lon = items[S.LAT].to_numpy(float), items[S.LON].to_numpy(float)
    y = lat * 111_320.0
    x = lon * 111_320.0 * np.cos(np.deg2rad(lat.mean()))
    blocks = []
    for km in cells_km:
        cell = pd.Series([f"{a}_{b}" for a, b in zip(np.floor(x / (km * 1000)).astype(int),
                                                      np.floor(y / (km * 1000)).astype(int), strict=True)])
        blocks.append(_one_hot(cell, f"cell{km}")[0])
    return _with_identity(blocks)


def _with_identity(blocks: list[sp.csr_matrix]) -> sp.csr_matrix:
    n = blocks[0].shape[0]
    m = sp.hstack([sp.identity(n, dtype=np.float32, format="csr"), *blocks], format="csr")
    norm = np.asarray(m.sum(axis=1)).ravel()
    return sp.csr_matrix(sp.diags(1.0 / np.maximum(norm, 1e-12)) @ m, dtype=np.float32)


def category_features(task: Task) -> sp.csr_matrix:
    """Multi-hot Yelp categories (", "-separated), rows not normalised (no identity block)."""
    cats = task.dataset.items["categories"].fillna("").astype(str).str.split(", ")
    codes, _ = pd.factorize(cats.explode())
    rows = np.repeat(np.arange(len(cats)), cats.str.len())
    ok = codes >= 0
    return sp.csr_matrix((np.ones(ok.sum(), np.float32), (rows[ok], codes[ok])), shape=(len(cats), codes.max() + 1))


def content_features(task: Task) -> sp.csr_matrix:
    """Identity + the data set's content, rows L1-normalised: genres + year (ML-100K), categories + 1/2 km cells
    (Yelp), 0.5/1/2 km cells (Singapore). Shared by LightFM and the plain two-tower."""
    if task.name == "ml100k":
        return movie_features(task)
    cells = grid_cell_features(task, (1.0, 2.0) if task.name == "yelp" else (0.5, 1.0, 2.0))
    if task.name != "yelp":
        return cells
    cats = category_features(task)
    m = sp.hstack([sp.csr_matrix(cells > 0, dtype=np.float32), cats], format="csr")
    norm = np.asarray(m.sum(axis=1)).ravel()
    return sp.csr_matrix(sp.diags(1.0 / np.maximum(norm, 1e-12)) @ m, dtype=np.float32)


def _warp_epochs(task: Task, features: sp.csr_matrix, params: dict[str, Any], max_epochs: int,
                 every: int, weighted: bool) -> Iterator[tuple[int, float, Callable[[np.ndarray], np.ndarray]]]:
    """Train one LightFM-WARP model, yielding (epochs so far, fit seconds, scorer) every ``every`` epochs."""
    from lightfm import LightFM

    model = LightFM(loss="warp", no_components=params["dim"], learning_rate=params["lr"],
                    item_alpha=params["item_alpha"], user_alpha=params["item_alpha"], random_state=0)
    inter = sp.coo_matrix(task.train_pos)
    interactions = sp.coo_matrix((np.ones_like(inter.data), (inter.row, inter.col)), shape=inter.shape)
    weights = sp.coo_matrix((np.log1p(inter.data) / np.log(2.0), (inter.row, inter.col)), shape=inter.shape) \
        if weighted else None
    fit_s = 0.0
    for epoch in range(every, max_epochs + 1, every):
        t0 = time.perf_counter()
        model.fit_partial(interactions, item_features=features, sample_weight=weights, epochs=every, num_threads=2)
        fit_s += time.perf_counter() - t0
        i_bias, i_emb = model.get_item_representations(features)
        _, u_emb = model.get_user_representations()
        yield epoch, fit_s, score_table(task, u_emb, i_emb, i_bias)


def run_lightfm(task: Task, features: sp.csr_matrix, grid: dict[str, list[Any]], max_epochs: int = 60,
                every: int = 5, label: str = "lightfm-warp") -> list[Result]:
    """Grid over dim x lr x item_alpha x weighting; epochs tuned by validation every ``every`` epochs."""
    rows = []
    for dim, lr, alpha, weighted in itertools.product(grid["dim"], grid["lr"], grid["item_alpha"],
                                                      grid.get("weighted", [False])):
        params = {"dim": dim, "lr": lr, "item_alpha": alpha, "weighted": weighted}
        best: Result | None = None
        for epoch, fit_s, score in _warp_epochs(task, features, params, max_epochs, every, weighted):
            row = _row(label, {**params, "epochs": epoch}, evaluate(task, score), fit_s)
            if best is None or row["ndcg"] > best["ndcg"]:
                best = row
        if best is not None:  # None only when max_epochs < every
            rows.append(best)
    return rows


# --- the product's own baselines (geotower.evaluate.baselines), tuned on the validation part ------------------
PRODUCT_GRIDS: dict[str, dict[str, list[Any]]] = {
    "recent": {"half_life_days": [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 256.0, 1024.0]},
    "itemknn": {"n_neighbors": [20, 50, 200, 1000]},
    "rp3beta": {"alpha": [0.5, 1.0], "beta": [0.0, 0.25, 0.5], "n_neighbors": [100, 500]},
    "ease": {"l2": [20.0, 100.0, 300.0, 1000.0, 3000.0]},
    "bpr": {"factors": [64, 128], "learning_rate": [0.01, 0.05], "regularization": [0.01], "iterations": [50, 200]},
}


def run_product(task: Task, name: str, grid: dict[str, list[Any]] | None = None) -> list[Result]:
    """Every grid point of one product baseline fitted on the train part, scored on validation."""
    from geotower.evaluate import baselines as B

    rows = []
    for params in B.grid(PRODUCT_GRIDS[name] if grid is None else grid):
        model = B.make(name, params, seed=0, threads=1)
        t0 = time.perf_counter()
        with threadpool_limits(1, "blas"):
            model = B._fit(model, name, task.train_pos, None, task.events)
        fit_s = time.perf_counter() - t0
        rows.append(_row(B.DISPLAY_NAMES[name], params, evaluate(task, model.score), fit_s))
    return rows


# --- plain ID+content two-tower with logQ in-batch softmax --------------------------------------------------
def _plain_two_tower(task: Task, features: sp.csr_matrix, dim: int, temperature: float, epochs: int,
                     lr: float = 0.01, batch: int = 512, every: int = 1
                     ) -> Iterator[tuple[int, float, Callable[[np.ndarray], np.ndarray]]]:
    """User = user-ID embedding; item = (L1-normalised) feature rows (identity + content) @ one embedding table.

    In-batch softmax over the batch's items with logQ correction (subtract log item frequency), cosine / T, Adam;
    yields (epoch, fit seconds, scorer) every ``every`` epochs. The ~60-line model a practitioner would write first.
    """
    import torch

    torch.manual_seed(0)
    coo = sp.coo_matrix(task.train_pos)
    users_t, items_t = torch.from_numpy(coo.row.astype(np.int64)), torch.from_numpy(coo.col.astype(np.int64))
    f = sp.csr_matrix(features, dtype=np.float32)
    indptr, indices = torch.from_numpy(f.indptr.astype(np.int64)), torch.from_numpy(f.indices.astype(np.int64))
    values = torch.from_numpy(f.data)

    def item_vectors(idx: Any) -> Any:  # (n, dim): weighted sum of each item's feature embeddings
        from geotower.model.history import csr_rows

        bag, pos = csr_rows(indptr, idx)
        counts = indptr[idx + 1] - indptr[idx]
        offsets = torch.cumsum(counts, 0) - counts
        return torch.nn.functional.embedding_bag(indices[pos], feat_emb, offsets, mode="sum",
                                                 per_sample_weights=values[pos])

    user_emb = torch.nn.Embedding(task.train_pos.shape[0], dim)
    feat_emb = torch.nn.Parameter(torch.randn(f.shape[1], dim) * 0.05)
    torch.nn.init.normal_(user_emb.weight, std=0.05)
    opt = torch.optim.Adam([user_emb.weight, feat_emb], lr=lr)
    pop = np.bincount(coo.col, minlength=task.n_items).astype(np.float32)
    log_q = torch.from_numpy(np.log(np.maximum(pop, 1.0) / pop.sum()))
    gen = torch.Generator().manual_seed(0)
    fit_s = 0.0
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        perm = torch.randperm(len(users_t), generator=gen)
        for s in range(0, len(perm), batch):
            rows = perm[s:s + batch]
            u, i = users_t[rows], items_t[rows]
            uniq, col = torch.unique(i, return_inverse=True)
            items = torch.nn.functional.normalize(item_vectors(uniq), dim=1)
            uv = torch.nn.functional.normalize(user_emb(u), dim=1)
            logits = uv @ items.T / temperature - log_q[uniq][None, :]
            loss = torch.nn.functional.cross_entropy(logits, col)
            opt.zero_grad()
            loss.backward()
            opt.step()
        fit_s += time.perf_counter() - t0
        if epoch % every == 0:
            with torch.no_grad():
                i_emb = torch.nn.functional.normalize(item_vectors(torch.arange(task.n_items)), dim=1).numpy()
                u_emb = torch.nn.functional.normalize(user_emb.weight, dim=1).numpy()
            yield epoch, fit_s, score_table(task, u_emb, i_emb)


def run_plain_two_tower(task: Task, features: sp.csr_matrix, grid: dict[str, list[Any]], max_epochs: int = 30,
                        label: str = "plain ID+content two-tower (logQ in-batch)") -> list[Result]:
    """Grid over dim x temperature x lr; epochs tuned on validation after every epoch."""
    import torch

    rows = []
    torch.set_num_threads(1)
    for dim, temp, lr in itertools.product(grid["dim"], grid["temperature"], grid["lr"]):
        best: Result | None = None
        bad = 0
        for epoch, fit_s, score in _plain_two_tower(task, features, dim, temp, max_epochs, lr=lr):
            row = _row(label, {"dim": dim, "temperature": temp, "lr": lr, "epochs": epoch}, evaluate(task, score),
                       fit_s)
            if best is None or row["ndcg"] > best["ndcg"]:
                best, bad = row, 0
            else:
                bad += 1
            if bad >= 3:
                break
        if best is not None:
            rows.append(best)
    return rows
