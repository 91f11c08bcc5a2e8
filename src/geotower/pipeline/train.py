"""``geotower train``: dataset folder in, run folder out, as a sequence of stages over one :class:`TrainSetup`.

Loads the dataset and splits it with :func:`geotower.ingest.protocol.split` (held-out test rows are never seen;
validation is carved from the train rows), fits the feature encoders on train rows, trains the two towers with
early stopping on validation NDCG@K (the evaluation function is injected here, so ``train`` never imports
``evaluate``), optionally refits on every train row and trains extra ensemble members, embeds every item and every
user with train positives (history = all their train positives) and writes the bundle.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from geotower import artifacts
from geotower import schema as S
from geotower.config import RunConfig, validate
from geotower.errors import ConfigError, DataError, GeotowerWarning
from geotower.evaluate.metrics import evaluate_embeddings
from geotower.ingest.dataset import Dataset, load_dataset
from geotower.ingest.protocol import id_index, split
from geotower.model.bundle import BundleParts, save_bundle
from geotower.model.encoders import TableEncoder
from geotower.model.ensemble import TowerEnsemble
from geotower.model.spec import TowerSpec
from geotower.model.towers import TwoTower
from geotower.model.trend import calibrate_weights
from geotower.train.batches import BatchSampler, TrainData
from geotower.train.callbacks import Checkpointer, TensorBoardLogger, mlflow_from_env, write_curves
from geotower.train.distributed import SINGLE, Dist, agreed, barrier, distributed_loss, init_from_env, resolve_device
from geotower.train.loop import LoopState, fit, two_tower_loss
from geotower.train.optim import OptimizerLike
from geotower.train.processes import ForkedFollowers, can_fork, fit_in_processes, fits_in_memory
from geotower.train.resume import fresh_or_resume
from geotower.train.sampling import hard_negative_neighbours, make_sampler, train_data
from geotower.train.setup import (
    EpochBudget,
    FollowerPool,
    TrainSetup,
    extra_epochs,
    member,
    new_model,
    runs_together,
    side_by_side,
    sparse_item_ids,
    sparse_user_ids,
    train_fixed,
)

__all__ = ["TrainResult", "build_setup", "train_run"]

Validator = Callable[[torch.nn.Module], dict[str, float]]
_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="geotower-curves")


@dataclass
class TrainResult:
    """What one training run produced."""

    run_dir: Path
    best_epoch: int
    epochs_run: int
    val_metrics: dict[str, float]
    wall_time_s: float
    n_users: int
    n_items: int
    cold_users: int
    history: list[dict[str, float]] = field(default_factory=list)
    paths: dict[str, Path] = field(default_factory=dict)


def train_run(data_dir: str | Path, out_dir: str | Path, cfg: RunConfig, resume: bool = False,
              progress: bool = True) -> TrainResult:
    """Train the two towers on a dataset folder and write the run folder atomically.

    Everything is written into ``.<RUN>.partial`` beside ``out_dir`` and swapped in complete at the end
    (:func:`geotower.artifacts.staged_folder`), so a killed retrain leaves the previous run intact; ``resume``
    continues from that staging folder's checkpoints (or from a complete run's).
    """
    out = Path(out_dir)
    validate(cfg)
    dist = init_from_env(resolve_device(cfg.train.device))
    if cfg.train.threads > 0:
        torch.set_num_threads(cfg.train.threads)
    previous = torch.are_deterministic_algorithms_enabled()
    # multi-threaded CPU kernels (index_add/scatter backward) otherwise sum in a varying order: same seed,
    # different bytes with 2+ threads; deterministic kernels cost no measurable time (docs/reliability.md).
    # One thread is deterministic already, and switching the flag imports torch._inductor (1.4-2.6 s per run)
    deterministic = torch.get_num_threads() > 1 and not previous
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        if not dist.is_main:  # ranks > 0 train in rank 0's staging folder once it is set up, and write nothing
            barrier(dist)
            _train_into(data_dir, artifacts.staging_path(out), cfg, resume, progress, dist)
            return None  # type: ignore[return-value]
        with artifacts.staged_folder(out, "run", keep_existing=resume, resumable=True, reuse=resume,
                                     inputs=[data_dir]) as stage:
            barrier(dist)
            result = _train_into(data_dir, stage, cfg, resume, progress, dist)
    finally:
        if deterministic:
            torch.use_deterministic_algorithms(False)
    return dataclasses.replace(result, run_dir=out, paths={"run": out, "manifest": out / artifacts.MANIFEST})


def _train_into(data_dir: str | Path, out_dir: str | Path, cfg: RunConfig, resume: bool = False,
                progress: bool = True, dist: Dist = SINGLE) -> TrainResult:
    """Train the two towers on a dataset folder and write the run files into ``out_dir`` (the staging folder).

    Args:
        data_dir: dataset folder (see :mod:`geotower.ingest.dataset`).
        out_dir: run folder to (over)write.
        cfg: the resolved configuration.
        resume: continue from the last complete epoch checkpoint in ``out_dir``.
        progress: show progress bars.

    Raises:
        DataError: unreadable dataset or no positives in the train rows. ConfigError: invalid settings.
    """
    t0 = time.perf_counter()
    validate(cfg)
    progress = progress and dist.is_main
    out = Path(out_dir)
    setup = build_setup(Path(data_dir).resolve(), cfg)
    if not cfg.train.early_stopping:
        return _train_fixed_budget(setup, out, cfg, progress, dist, t0)
    fit_data = train_data(setup.index, setup.rows.fit, cfg, setup.neighbours)
    validator = agreed(_validator(setup, fit_data, cfg), dist)
    refit = cfg.train.refit and validator is not None and len(setup.rows.validation) > 0
    final_data = train_data(setup.index, setup.rows.train, cfg, setup.neighbours) if refit else fit_data
    seeds = ([cfg.seed] if refit else []) + [cfg.seed + m for m in range(1, cfg.model.members)]
    # the refit and the extra members train alongside early stopping (EpochBudget) unless what they train depends
    # on its end: calibrated trend weights, or a learning-rate schedule over the chosen epoch count
    # ... and when memory has room for it: alongside, early stopping's Adam state and batches live as long as the
    # refit models' (16.9 GB at full Yelp size against 14.3 GB with the refit after early stopping, docs/scale.md)
    alongside = not cfg.train.calibrate_trend and not cfg.train.lr_decay and fits_in_memory(len(seeds))
    # built before member 0: new_model seeds the global RNG, which member 0's ID dropout draws from
    followers = [member(setup, final_data, cfg, seed) for seed in seeds] if alongside else []
    stages = {"setup": time.perf_counter() - t0}
    model, state, trained, es_seconds = _early_stopped(setup, fit_data, cfg, out, validator, followers,
                                                       resume=resume, progress=progress, dist=dist)
    stages["early_stopping"] = es_seconds
    # the curves depend on the early-stopping history only: drawn (matplotlib import included, ~1 s on Yelp)
    # in a background thread while the refit models finish and the run is written
    curves = _pool.submit(write_curves, out / "curves.png", list(state.history), cfg.eval.k, state.best_epoch) \
        if dist.is_main else None
    if not alongside:
        trend_weight = _calibrate_trend(model, setup, fit_data, cfg) if validator is not None else None
        if trend_weight is not None:
            model.trend_weight.data.copy_(trend_weight)  # type: ignore[union-attr]
        epochs = state.best_epoch if state.best_epoch > 0 else state.epoch
        trained = train_fixed(setup, final_data, cfg, epochs, seeds=seeds, trend_weight=trend_weight,
                              progress=progress, dist=dist)
    members = trained if refit else [model, *trained]
    stages["refit_and_members"] = time.perf_counter() - t0 - sum(stages.values())
    final = TowerEnsemble(members) if len(members) > 1 else members[0]  # with one member: the refit, if any
    result = None
    if dist.is_main:  # rank 0 alone writes the run files
        all_data = final_data if refit else train_data(setup.index, setup.rows.train, cfg, None)
        result = _write_run(out, setup, cfg, final, state, all_data=all_data, stages=stages, start=t0,
                            curves=curves)
    barrier(dist)
    return result  # type: ignore[return-value]  # None on ranks > 0


def _train_fixed_budget(setup: TrainSetup, out: Path, cfg: RunConfig, progress: bool, dist: Dist,
                        t0: float) -> TrainResult:
    """``train.early_stopping=false``: every member trains ``train.epochs`` epochs on all training rows, side by
    side, with no validation rows held back inside ``train``."""
    data = train_data(setup.index, setup.rows.train, cfg, setup.neighbours)
    stages = {"setup": time.perf_counter() - t0}
    if dist.is_main:
        artifacts.write_json(out / artifacts.CONFIG_JSON, cfg.to_dict())
    members = _fixed_members(setup, data, cfg, progress, dist)
    stages["members"] = time.perf_counter() - t0 - sum(stages.values())
    state = LoopState(epoch=cfg.train.epochs, best_epoch=cfg.train.epochs)
    result = None
    if dist.is_main:
        final = TowerEnsemble(members) if len(members) > 1 else members[0]
        result = _write_run(out, setup, cfg, final, state, all_data=data, stages=stages, start=t0)
    barrier(dist)
    return result  # type: ignore[return-value]  # None on ranks > 0


def _fixed_members(setup: TrainSetup, data: TrainData, cfg: RunConfig, progress: bool, dist: Dist) -> list[TwoTower]:
    """The members of a fixed budget: in forked processes where :func:`can_fork` allows (one per core, not
    waiting on each other for the GIL), else in threads or one after the other (:func:`train_fixed`)."""
    seeds = [cfg.seed + m for m in range(cfg.model.members)]
    if len(seeds) > 1 and can_fork(dist, resolve_device(cfg.train.device), len(seeds) - 1):
        jobs = [member(setup, data, cfg, seed) for seed in seeds]
        with tempfile.TemporaryDirectory(prefix="geotower-members-") as tmp:
            members = fit_in_processes(jobs, cfg, cfg.train.epochs + extra_epochs(cfg), Path(tmp), progress)
        if members is not None:
            return members
    return train_fixed(setup, data, cfg, cfg.train.epochs, seeds=seeds, progress=progress, dist=dist)


# --- stage 1: the setup ----------------------------------------------------------------------------
def build_setup(data_dir: Path, cfg: RunConfig) -> TrainSetup:
    """Load and split the dataset, index it, fit and apply the encoders, derive the tower spec.

    Raises:
        DataError: unreadable dataset or no positives in the train rows.
        ConfigError: neither item IDs nor item features to learn from.
    """
    ds = load_dataset(data_dir, strict=cfg.data.strict)
    rows = split(ds, cfg)
    if not rows.train[S.POSITIVE].any():
        raise DataError("no positive interactions in the train split", path=data_dir)
    index = id_index(ds, rows.train)
    item_enc, item_dense, item_cells = _item_inputs(ds, rows.train, cfg)
    user_enc, user_dense = _user_inputs(ds, index.users, cfg)
    if not cfg.model.use_item_id and item_enc.dense_dim + len(item_enc.cell_vocab_sizes) == 0:
        raise ConfigError("model.use_item_id=false but the items have no feature columns to learn from "
                          f"(features.geo_encoding={cfg.features.geo_encoding!r}); enable one of them")
    spec = TowerSpec.from_config(cfg.model, n_items=len(index.items), n_users=len(index.users),
                                 item_dense_dim=item_enc.dense_dim, user_dense_dim=user_dense.shape[1],
                                 cell_vocab_sizes=item_enc.cell_vocab_sizes,
                                 trend_dim=len(cfg.model.trend_half_lives_days) if ds.has_timestamps else 0,
                                 sparse_user_ids=sparse_user_ids(len(index.users), cfg),
                                 sparse_item_ids=sparse_item_ids(len(index.items), cfg))
    return TrainSetup(ds=ds, rows=rows, index=index, item_enc=item_enc, user_enc=user_enc, item_dense=item_dense,
                      item_cells=item_cells, user_dense=user_dense, spec=spec,
                      neighbours=hard_negative_neighbours(ds, cfg))


def _item_inputs(ds: Dataset, train: pd.DataFrame, cfg: RunConfig) -> tuple[TableEncoder, np.ndarray, np.ndarray]:
    """The item encoder fitted on the train rows' items, and every item's (dense, cells) inputs."""
    spec = ds.spec.items
    enc = TableEncoder(S.ITEM_ID, spec.multi_label, spec.categorical, exclude=spec.exclude,
                       geo_kind=cfg.features.geo_encoding, cells_m=cfg.features.grid_cells_m,
                       nan_policy=cfg.data.nan_policy, seed=cfg.seed)
    # the distinct train items: pandas' isin on Arrow strings converts each value it is given in Python
    # (0.27 s of a Singapore setup for its 60k train rows)
    enc.fit(ds.items[ds.items[S.ITEM_ID].isin(train[S.ITEM_ID].unique())])
    encoded = enc.transform(ds.items)
    return enc, encoded.dense, encoded.cells


def _user_inputs(ds: Dataset, users: np.ndarray, cfg: RunConfig) -> tuple[TableEncoder | None, np.ndarray]:
    """The user encoder fitted on the indexed users' rows, and their dense inputs (unknown users -> zeros)."""
    if ds.users is None:
        return None, np.zeros((len(users), 0), dtype=np.float32)
    us = ds.spec.users
    enc = TableEncoder(S.USER_ID, us.multi_label, us.categorical, exclude=us.exclude, geo_kind="none",
                       cells_m=cfg.features.grid_cells_m, nan_policy=cfg.data.nan_policy, seed=cfg.seed)
    table = ds.users[ds.users[S.USER_ID].isin(users)]
    enc.fit(table)
    dense = np.zeros((len(users), enc.dense_dim), dtype=np.float32)
    dense[pd.Index(users).get_indexer(table[S.USER_ID])] = enc.transform(table).dense
    return enc, dense


# --- stage 2: early stopping on validation ---------------------------------------------------------
def _early_stopped(setup: TrainSetup, fit_data: TrainData, cfg: RunConfig, out: Path, validator: Validator | None,
                   followers: list[tuple[TwoTower, OptimizerLike, BatchSampler]], *, resume: bool, progress: bool,
                   dist: Dist = SINGLE) -> tuple[TwoTower, LoopState, list[TwoTower], float]:
    """Train on the fit rows with checkpoints and TensorBoard, and the ``followers`` (refit, extra members) alongside
    as far as its best epoch (:class:`~geotower.train.setup.EpochBudget`).

    Returns (the model at its best epoch, its loop state, the followers' models, the early-stopping seconds). The
    followers have no checkpoints: they do not depend on the early-stopped model, so a resumed run trains them again
    from the start and gets the same weights.
    """
    model, optimizer = new_model(setup, fit_data, cfg)
    gen = torch.Generator().manual_seed(cfg.seed)
    sampler = make_sampler(fit_data, cfg, gen, (setup.item_dense, setup.item_cells))
    ckpt = Checkpointer(out / "checkpoints", model, optimizer, gen)
    state = fresh_or_resume(out, cfg, resume, ckpt)
    # every successful early stopping ends with a budget of 1 epoch or more: the followers start at once
    budget = EpochBudget(max(1, state.best_epoch if state else 0), extra=extra_epochs(cfg))
    pool = FollowerPool(followers, cfg, budget, dist)
    forked = bool(followers) and can_fork(dist, resolve_device(cfg.train.device), len(followers))
    jobs = 1 + pool.threads()  # early stopping and the refit models' threads or processes (one per spare core)
    if jobs >= (os.cpu_count() or 1) and (forked or runs_together(jobs, dist)):
        # every core trains: a batch-building thread per training would only compete with them for the cores
        # (Singapore on 2 cores: 15.2 s with them, 14.0 s without, one run each)
        for source in [sampler, *[f[2] for f in followers]]:
            source.prefetch = False
    with tempfile.TemporaryDirectory(prefix="geotower-refit-") as tmp:
        # forked before the TensorBoard writer's thread exists (geotower.train.processes)
        children = ForkedFollowers.start(followers, cfg, budget, Path(tmp)) if forked else None
        try:
            done, es_seconds = _early_stopping_run(model, optimizer, sampler, (ckpt, state, budget), cfg, out,
                                                   validator, pool if children is None else None, progress, dist)
            models = pool.members() if children is None else children.join()
        finally:
            if children is not None:
                children.stop()
    return model, done, models, es_seconds


def _early_stopping_run(model: TwoTower, optimizer: OptimizerLike, sampler: BatchSampler,
                        loop: tuple[Checkpointer, LoopState | None, EpochBudget], cfg: RunConfig, out: Path,
                        validator: Validator | None, pool: FollowerPool | None, progress: bool, dist: Dist
                        ) -> tuple[LoopState, float]:
    """Early stopping with its logging and checkpoints; the threads of ``pool`` (None: none) train beside it, and
    this thread joins them once it ends. Returns the loop state and early stopping's seconds."""
    ckpt, state, budget = loop
    callbacks: list[Any] = []
    if dist.is_main:  # rank 0 alone writes; every rank resumed from its checkpoint above
        artifacts.write_json(out / artifacts.CONFIG_JSON, cfg.to_dict())
        hparams = {f"{sec}.{k}": v for sec in ("model", "train") for k, v in cfg.to_dict()[sec].items()}
        callbacks = [TensorBoardLogger(out / "tb", hparams, purge_step=(state.step + 1) if state else None), ckpt,
                     *mlflow_from_env(hparams, out.name)]
    t, start, ended = cfg.train, time.perf_counter(), []

    def early(show: bool) -> LoopState:
        try:
            done = fit(model, optimizer, sampler, distributed_loss(model, two_tower_loss(t.loss), dist), t.epochs,
                       patience=t.patience if validator else 0, validate=validator, metric="ndcg",
                       callbacks=[*callbacks, budget], state=state, progress=show, lr_decay=t.lr_decay)
        except BaseException:
            budget.close(None)  # the followers stop; the error is raised here
            raise
        finally:
            ended.append(time.perf_counter())
        if pool is not None:
            pool.work(False)  # this core helps the refit models finish
        return done

    jobs: list[Callable[[bool], Any]] = [early, *([pool.work] * pool.threads() if pool is not None else [])]
    done = side_by_side(jobs, progress, dist)
    assert isinstance(done[0], LoopState)
    return done[0], ended[0] - start


def _validator(setup: TrainSetup, fit_data: TrainData, cfg: RunConfig) -> Validator | None:
    """The injected validation function: NDCG@K etc. of validation positives, masking fit-seen items."""
    ix, rows = setup.index, setup.rows
    pos_val = rows.validation[rows.validation[S.POSITIVE]]
    users = np.unique(ix.user_index(pos_val)[ix.user_index(pos_val) >= 0])
    cap = cfg.train.val_max_users
    if 0 < cap < len(users):  # a seeded sample: ranking 308k users x 152k items took 3.5 min an epoch
        users = np.sort(np.random.default_rng(cfg.seed).choice(users, cap, replace=False))
    relevant, seen = ix.csr(pos_val)[users], ix.csr(rows.fit)[users]  # rows of the validation users only
    if len(users) == 0:
        warnings.warn("the validation split has no positives of known users; early stopping is disabled",
                      GeotowerWarning, stacklevel=3)
        return None

    def validate_model(model: torch.nn.Module) -> dict[str, float]:  # fit() hands back the TwoTower it trains
        item_emb = model.all_item_embeddings().cpu().numpy()  # type: ignore[operator]
        # the validation users only (embedding every user each epoch was most of a validation at full Yelp size)
        user_emb = model.user_embeddings(fit_data.hist_indptr, fit_data.hist_items,  # type: ignore[operator]
                                         fit_data.hist_weights if cfg.model.history_weighted else None,
                                         users=torch.from_numpy(users)).cpu().numpy()
        metrics = evaluate_embeddings(user_emb, item_emb, np.arange(len(users)), relevant, seen, cfg.eval.k)
        return {k: float(v) for k, v in metrics.items()}

    return validate_model


# --- stage 3: trend calibration ----------------------------------------------------------------------
def _calibrate_trend(model: TwoTower, setup: TrainSetup, fit_data: TrainData, cfg: RunConfig) -> torch.Tensor | None:
    """Trend weights refit on the validation rows (see :func:`geotower.model.trend.calibrate_weights`), or None."""
    if model.trend_weight is None or fit_data.trend_now is None or not cfg.train.calibrate_trend:
        return None
    ix, rows = setup.index, setup.rows
    pv = rows.validation[rows.validation[S.POSITIVE]]
    u, i = ix.user_index(pv), ix.item_index(pv)
    ok = u >= 0
    if not ok.any():
        return None
    seen = ix.csr(rows.fit)
    n_u, n_i = seen.shape
    seen_keys = np.repeat(np.arange(n_u, dtype=np.int64), np.diff(seen.indptr)) * n_i + seen.indices
    with torch.no_grad():
        items = model.all_item_embeddings()[:, :-1].cpu()  # drop the prior column: it is what gets refit
        users = model.user_embeddings(fit_data.hist_indptr, fit_data.hist_items,
                                      fit_data.hist_weights if cfg.model.history_weighted else None)[:, :-1].cpu()
    return calibrate_weights(users, items, fit_data.trend_now, torch.from_numpy(u[ok]), torch.from_numpy(i[ok]),
                             seen_keys=torch.from_numpy(np.sort(seen_keys)), init=model.trend_weight.detach().cpu(),
                             seed=cfg.seed)


# --- stage 4: the run folder -----------------------------------------------------------------------
def _write_run(out: Path, setup: TrainSetup, cfg: RunConfig, model: TwoTower | TowerEnsemble, state: LoopState,
               all_data: TrainData, stages: dict[str, float], start: float,
               curves: Future[None] | None = None) -> TrainResult:
    """Embed with all train positives (``all_data``) as history, then write the bundle, manifest and curves.

    ``stages`` holds the seconds of the stages so far; this one's is added as ``write`` (the manifest records all,
    so a slow run shows where its time went). ``start`` is the run's ``perf_counter`` start. ``curves``: the
    curves PNG being drawn in the background (None: draw it here, if there is a history to draw).
    """
    model.cpu()  # trained on a GPU or not: the run's embeddings and weights are exported from the CPU
    if all_data.trend_now is not None:  # the prior "now" = after every training row (without refit too)
        model.set_trend(None, all_data.trend_now)
    with torch.no_grad():
        item_emb = model.all_item_embeddings().numpy()
        user_emb = model.user_embeddings(all_data.hist_indptr, all_data.hist_items,
                                         all_data.hist_weights if cfg.model.history_weighted else None).numpy()
    ix, ds, train = setup.index, setup.ds, setup.rows.train
    pos = train[S.POSITIVE].to_numpy()
    popularity = np.bincount(ix.item_index(train)[pos], minlength=len(ix.items)).astype(np.float32)
    cols = [c for c in (S.ITEM_ID, S.NAME, S.LAT, S.LON) if c in ds.items.columns]
    save_bundle(out, BundleParts(model=model, item_encoder=setup.item_enc, user_encoder=setup.user_enc,
                                 items=ds.items[cols], user_ids=ix.users, item_emb=item_emb, user_emb=user_emb,
                                 seen=ix.csr(train), popularity=popularity))
    best = next((r for r in state.history if r["epoch"] == state.best_epoch), {})
    val_metrics = {k: v for k, v in best.items() if k not in ("epoch", "loss")}
    if curves is None and state.history:  # a fixed budget validates nothing: no curves (matplotlib ~0.9 s on Yelp)
        write_curves(out / "curves.png", state.history, cfg.eval.k, state.best_epoch)
    elif curves is not None:
        curves.result()  # re-raises a failure of the drawing thread here
    wall = time.perf_counter() - start
    stages["write"] = wall - sum(stages.values())
    extra = _manifest_extra(setup, cfg, model, state, wall, val_metrics)
    extra["stage_seconds"] = {k: round(v, 3) for k, v in stages.items()}
    artifacts.write_manifest(out, cfg.to_dict(), ds.fingerprint(), extra)
    return TrainResult(run_dir=out, best_epoch=state.best_epoch, epochs_run=state.epoch, val_metrics=val_metrics,
                       wall_time_s=wall, n_users=len(ix.users), n_items=len(ix.items), cold_users=ix.cold_users,
                       history=state.history, paths={"run": out, "manifest": out / artifacts.MANIFEST})


def _manifest_extra(setup: TrainSetup, cfg: RunConfig, model: TwoTower | TowerEnsemble, state: LoopState,
                    wall: float, val_metrics: dict[str, float]) -> dict[str, object]:
    """The run-specific part of the manifest: split, row counts, index sizes, epochs, metrics, trend weights."""
    rows, ix = setup.rows, setup.index
    extra: dict[str, object] = {
        "dataset_dir": str(setup.ds.files["items"].parent.resolve()), "split": rows.info, "refit": cfg.train.refit,
        "rows": {"train": len(rows.train), "test": rows.n_test, "fit": len(rows.fit), "val": len(rows.validation)},
        "n_users": len(ix.users), "n_items": len(ix.items), "cold_users": ix.cold_users,
        "best_epoch": state.best_epoch, "epochs_run": state.epoch, "val_metrics": val_metrics,
        "history": state.history, "wall_time_s": wall}
    members = list(model.members) if isinstance(model, TowerEnsemble) else [model]
    extra["members"] = len(members)
    if members[0].trend_weight is not None:
        weights = [[round(float(w), 6) for w in m.trend_weight.detach()] for m in members]  # type: ignore[union-attr]
        extra["trend"] = {"half_lives_days": list(cfg.model.trend_half_lives_days), "weights": weights[0],
                          "member_weights": weights, "calibrated": cfg.train.calibrate_trend}
    return extra
