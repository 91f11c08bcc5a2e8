"""The rows of ``geotower evaluate``: one :class:`ModelResult` per model, each scored on the same held-out users.

geotower and the content two-tower are scored from their saved embeddings (exact FAISS top-K); the CF baselines are
tuned on a validation split carved from the train rows exactly as training carves it, never on the test rows, then
refit and scored like geotower. Every row carries per-user NDCG/Recall, so geotower can be paired with the best one.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from geotower import artifacts
from geotower import schema as S
from geotower.config import PRESETS, RunConfig, with_overrides
from geotower.errors import ArtifactError, GeotowerError, GeotowerWarning
from geotower.evaluate import baselines as B
from geotower.evaluate.bands import breakdowns
from geotower.evaluate.heldout import HeldOut, positives
from geotower.evaluate.metrics import evaluate_embeddings, evaluate_scorer, ground_truth, rank_topk
from geotower.evaluate.report import ModelResult
from geotower.evaluate.stats import paired_test, per_user, standard_error
from geotower.ingest.dataset import Dataset
from geotower.ingest.protocol import carve_validation
from geotower.model.bundle import load_bundle

CONTENT_TWOTOWER = "content_twotower"
# The original content-only two-tower: profile user tower, item features only, BPR, 512/128 MLPs. Coordinates keep
# the run's encoding, so the baseline still has an input on data sets whose only item features are lat/lon.
CONTENT_OVERRIDES = tuple(o for o in PRESETS["original_content"] if not o.startswith("features.geo_encoding"))


# --- geotower's row (and any saved run's) -------------------------------------------------------
def _embedding_matrices(name: str, bundle: Any, proto: HeldOut) -> tuple[np.ndarray, np.ndarray]:
    """(n_users, d) user and (n_items, d) item embeddings in the held-out index spaces (scores = dot products).

    A warm user without a saved embedding (should not happen for a consistent run) scores 0 for every item,
    with a warning, so all models are still judged on the same users.
    """
    items = pd.Index(bundle.item_ids.astype(str)).get_indexer(proto.item_ids)
    if (items < 0).any():
        raise ArtifactError(f"{bundle.run_dir}: {int((items < 0).sum())} dataset items have no embedding")
    user_emb = np.vstack([bundle.user_emb, np.zeros((1, bundle.user_emb.shape[1]), bundle.user_emb.dtype)])
    rows = pd.Index(bundle.user_ids.astype(str)).get_indexer(proto.user_ids)  # (n_users,) -1 = no embedding
    missing = int((rows[proto.users] < 0).sum())
    if missing:
        warnings.warn(f"{name}: {missing} warm test users have no saved embedding; they score 0 for every item",
                      GeotowerWarning, stacklevel=3)
    rows[rows < 0] = len(user_emb) - 1  # the zero row
    return user_emb[rows], bundle.item_emb[items]


def _model_row(name: str, bundle: Any, proto: HeldOut, k: int, progress: bool, fit_s: float | None,
               params: dict[str, Any], label: str) -> ModelResult:
    """Metrics of a run's saved embeddings: exact top-K by FAISS inner-product search (no score blocks)."""
    user_emb, item_emb = _embedding_matrices(name, bundle, proto)
    metrics = evaluate_embeddings(user_emb, item_emb, proto.users, proto.relevant, proto.seen, k=k,
                                  batch_size=proto.batch_size, progress=progress)
    return _with_per_user(ModelResult(name, metrics, fit_s, params, label=label),
                          lambda users: user_emb[users] @ item_emb.T, proto, k)


def _with_per_user(row: ModelResult, score_fn: Any, proto: HeldOut, k: int) -> ModelResult:
    """Add the per-user NDCG/Recall (same users and masking as the means) and their standard errors."""
    pu = per_user(score_fn, proto.users, proto.relevant, proto.seen, k)
    row.per_user = (pu.ndcg, pu.recall)
    row.se = {"ndcg": standard_error(pu.ndcg), "recall": standard_error(pu.recall)}
    return row


def paired_vs_best(rows: list[ModelResult]) -> None:
    """Fill geotower's ``paired``: a paired t-test against the baseline with the best NDCG@K (same users)."""
    first, others = rows[0], [r for r in rows[1:] if r.per_user is not None and r.metrics]
    if first.per_user is None or not others:
        return
    best = max(others, key=lambda r: r.metrics["ndcg"])
    assert best.per_user is not None
    first.paired = {"vs": best.name, "n": len(first.per_user[0])}
    for m, a, b in zip(("ndcg", "recall"), first.per_user, best.per_user, strict=True):
        t = paired_test(a, b)
        first.paired.update({f"{m}_diff": t.diff, f"{m}_se": t.se, f"{m}_p": t.p_value})


def geotower_row(run_dir: Path, manifest: dict[str, Any], proto: HeldOut, k: int, progress: bool) -> ModelResult:
    bundle = load_bundle(run_dir)
    params = {key: manifest[key] for key in ("best_epoch",) if key in manifest}
    return _model_row("geotower", bundle, proto, k, progress=progress, fit_s=manifest.get("wall_time_s"),
                      params=params, label="geotower")


def geotower_bands(run_dir: Path, proto: HeldOut, ds: Dataset, k: int) -> list[dict[str, Any]]:
    """geotower's metrics by user activity, item popularity and distance from home (report.html, report.md)."""
    user_emb, item_emb = _embedding_matrices("geotower", load_bundle(run_dir), proto)
    users, step = proto.users, proto.batch_size
    topk = np.vstack([rank_topk(user_emb[users[s:s + step]] @ item_emb.T, proto.seen[users[s:s + step]], k)
                      for s in range(0, len(users), step)])
    coords = ds.items[[S.LAT, S.LON]].to_numpy(float) if ds.has_coordinates else None
    return breakdowns(topk, ground_truth(proto.relevant, proto.seen)[users], proto.train_pos[users], k,
                      None if coords is None else coords[:, 0], None if coords is None else coords[:, 1])


# --- the baselines' rows ---------------------------------------------------------------------------
def _validation(train: pd.DataFrame, proto: HeldOut, cfg: RunConfig) -> tuple[sp.csr_matrix, sp.csr_matrix,
                                                                              sp.csr_matrix, pd.DataFrame]:
    """Validation carved from the train rows exactly as training does (``protocol.carve_validation``)."""
    fit_rows, val_rows, _ = carve_validation(train, cfg)
    pos = positives(fit_rows)
    return (proto.matrix(pos, pos[S.WEIGHT].to_numpy()), proto.matrix(fit_rows), proto.matrix(positives(val_rows)),
            fit_rows)


def _events(proto: HeldOut, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray] | None:
    """(item index, timestamp seconds) of the positive ``rows``, for the time-aware baselines; None without time."""
    if S.TIMESTAMP not in rows.columns:
        return None
    pos = positives(rows)
    items = np.asarray(pd.Index(proto.item_ids).get_indexer(pos[S.ITEM_ID]), dtype=np.int64)
    ok = items >= 0
    return items[ok], pos[S.TIMESTAMP].to_numpy(dtype=np.float64)[ok]


def _score_baseline(model: Any, proto: HeldOut, k: int, progress: bool) -> tuple[dict[str, float], Any]:
    """Metrics and score function: matrix-factorisation baselines rank by dot products (the exact FAISS path);
    the others score in blocks."""
    users, items = getattr(model, "user_factors_", None), getattr(model, "item_factors_", None)
    if users is not None and items is not None:
        return evaluate_embeddings(users, items, proto.users, proto.relevant, proto.seen, k=k,
                                   batch_size=proto.batch_size, progress=progress), lambda u: users[u] @ items.T
    return evaluate_scorer(model.score, proto.users, proto.relevant, proto.seen, k=k, batch_size=proto.batch_size,
                           progress=progress), model.score


def _cf_rows(names: Sequence[str], train: pd.DataFrame, proto: HeldOut, cfg: RunConfig, k: int, progress: bool,
             grids: Mapping[str, Mapping[str, Sequence[Any]]] | None) -> list[ModelResult]:
    val_train, val_seen, val_relevant, fit_rows = _validation(train, proto, cfg)
    events, val_events = _events(proto, train), _events(proto, fit_rows)
    if names and not B.has_ground_truth(val_relevant, val_seen):
        warnings.warn(f"the validation split (train.val_fraction={cfg.train.val_fraction}) has no unseen positives; "
                      "baselines are not tuned and use their default params", GeotowerWarning, stacklevel=3)
    out = []
    for name in names:
        if name == "ease" and len(proto.item_ids) > B.EASE_MAX_ITEMS:
            warnings.warn(f"EASE skipped: {len(proto.item_ids)} items exceed {B.EASE_MAX_ITEMS} (it inverts a dense "
                          "items x items matrix)", GeotowerWarning, stacklevel=3)
            continue
        # BPR's Hogwild SGD is only reproducible on 1 thread; implicit's default (all cores) also spin-waits badly
        # on a busy machine (ALS 2.2 s vs 0.8 s on MovieLens-100k with 2 loaded cores), so 0 means 1 here
        threads = 1 if name == "bpr" else max(cfg.train.threads, 1)
        tuned = B.tune_and_fit(name, proto.train_pos, val_train, val_relevant, k,
                               grid_spec=None if grids is None else grids.get(name, {}), seed=cfg.seed,
                               threads=threads, val_seen=val_seen, events=events, val_events=val_events)
        metrics, score_fn = _score_baseline(tuned.model, proto, k, progress)
        params = {**tuned.params, **({"val_ndcg": round(tuned.val_ndcg, 4), "tune_s": round(tuned.tune_s, 2)}
                                     if tuned.val_ndcg is not None else {})}
        out.append(_with_per_user(ModelResult(name, metrics, tuned.fit_s, params, label=B.DISPLAY_NAMES[name]),
                                  score_fn, proto, k))
    return out


def _content_row(run_dir: Path, manifest: dict[str, Any], proto: HeldOut, k: int, progress: bool) -> ModelResult:
    """Train (or reuse) the original content-only two-tower under RUN/baselines and score it like geotower."""
    label = "content two-tower (original)"
    try:
        from geotower.pipeline.train import train_run
    except ImportError as exc:
        return ModelResult(CONTENT_TWOTOWER, {}, note=f"skipped: training pipeline unavailable ({exc})", label=label)
    out = run_dir / "baselines" / CONTENT_TWOTOWER
    content_cfg = with_overrides(artifacts.read_json(run_dir / artifacts.CONFIG_JSON), CONTENT_OVERRIDES)
    try:
        bundle = _reuse(out, content_cfg)
        reused = bundle is not None
        t0 = time.perf_counter()
        if bundle is None:
            train_run(manifest["dataset_dir"], out, content_cfg, progress=progress)
            bundle = load_bundle(out)
        fit_s = artifacts.read_json(out / artifacts.MANIFEST).get("wall_time_s") if reused else \
            time.perf_counter() - t0
    except GeotowerError as exc:
        return ModelResult(CONTENT_TWOTOWER, {}, note=f"skipped: {exc}", label=label)
    params = {"user_tower": "profile", "loss": "bpr", "mlp": "512/128"}
    row = _model_row(CONTENT_TWOTOWER, bundle, proto, k, progress=progress, fit_s=fit_s, params=params, label=label)
    row.note = "reused the earlier fit in RUN/baselines" if reused else ""
    return row


def _reuse(out: Path, cfg: RunConfig) -> Any:
    """An earlier fit of the same config on the same (unchanged) data, or None."""
    if not (out / artifacts.MANIFEST).exists() or not (out / artifacts.CONFIG_JSON).exists():
        return None
    if artifacts.read_json(out / artifacts.CONFIG_JSON) != cfg.to_dict():
        return None
    try:
        return load_bundle(out)  # verifies the data fingerprint
    except ArtifactError:
        return None


def baseline_rows(run: Path, cfg: RunConfig, manifest: dict[str, Any], train: pd.DataFrame, proto: HeldOut,
                   k: int, progress: bool, grids: Mapping[str, Mapping[str, Sequence[Any]]] | None
                   ) -> list[ModelResult]:
    """The rows of the baselines named in ``eval.baselines`` (unknown names warned about and skipped)."""
    names = [n for n in cfg.eval.baselines if n in B.FACTORIES]
    unknown = [n for n in cfg.eval.baselines if n not in B.FACTORIES and n != CONTENT_TWOTOWER]
    if unknown:
        warnings.warn(f"eval.baselines: unknown {unknown} skipped; available: {', '.join(B.FACTORIES)}, "
                      f"{CONTENT_TWOTOWER}", GeotowerWarning, stacklevel=3)
    rows = _cf_rows(names, train, proto, cfg, k, progress=progress, grids=grids)
    if CONTENT_TWOTOWER in cfg.eval.baselines:
        rows.append(_content_row(run, manifest, proto, k, progress))
    return rows
