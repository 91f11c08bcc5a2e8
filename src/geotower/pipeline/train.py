"""``geotower train``: dataset folder in, run folder (contract B) out.

Loads and splits the dataset (held-out test rows are never seen), carves a validation split from the train rows,
fits the feature encoders on train rows, trains the two towers with early stopping on validation NDCG@K (the
evaluation function is injected here, so ``train`` never imports ``evaluate``), restores the best epoch, embeds
every item and every user with train positives (history = all their train positives) and writes the bundle.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from geotower import artifacts
from geotower import schema as S
from geotower.config import RunConfig
from geotower.errors import ConfigError, DataError, GeotowerWarning
from geotower.evaluate.metrics import evaluate_embeddings
from geotower.ingest.dataset import Dataset, load_dataset
from geotower.ingest.split import holdout_split
from geotower.model.bundle import BundleParts, save_bundle
from geotower.model.encoders import TableEncoder
from geotower.model.towers import TowerEnsemble, TowerSpec, TwoTower
from geotower.model.trend import calibrate_weights
from geotower.train.batches import BatchSampler, TrainData, build_train_data, geo_neighbours
from geotower.train.callbacks import Checkpointer, TensorBoardLogger, completed_epochs, write_curves
from geotower.train.loop import LoopState, fit, two_tower_loss

# ``--set`` overrides that reproduce the original content two-tower exactly (see geotower.model.towers): content
# features only, user = MLP(mean of the standardised features of the user's positive items), no IDs, BPR, one
# 512-unit hidden layer to 128-d outputs, raw dot products.
TREND_LR_FACTOR = 10.0

ORIGINAL_CONTENT_TWO_TOWER: tuple[str, ...] = (
    "model.use_item_id=false", "model.use_user_id=false", "model.use_history=false", "model.normalize=false",
    "model.id_dropout=0.0", "model.n_layers=1", "model.hidden_dim=512", "model.embed_dim=128",
    'train.loss="bpr"', "train.history_leave_one_out=false", 'features.geo_encoding="none"',
    "model.trend_half_lives_days=[]", "model.members=1",
)


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


@dataclass
class Parts:
    """Row subsets: ``train`` (all non-test rows) = ``fit`` (trained on) + ``val`` (early stopping)."""

    train: pd.DataFrame
    fit: pd.DataFrame
    val: pd.DataFrame
    n_test: int
    info: dict[str, Any]


def split_rows(ds: Dataset, cfg: RunConfig) -> Parts:
    """The shared held-out protocol (contract C), then validation carved from train with seed + 1."""
    test_split = holdout_split(ds.interactions, cfg.eval.test_fraction, cfg.seed)
    train = ds.interactions.iloc[test_split.train].reset_index(drop=True)
    val_split = holdout_split(train, cfg.train.val_fraction, cfg.seed + 1)
    info = {"method": test_split.method, "cutoff": test_split.cutoff, "test_fraction": cfg.eval.test_fraction,
            "val_method": val_split.method, "val_cutoff": val_split.cutoff, "val_fraction": cfg.train.val_fraction}
    return Parts(train, train.iloc[val_split.train].reset_index(drop=True),
                 train.iloc[val_split.test].reset_index(drop=True), len(test_split.test), info)


@dataclass
class Indexed:
    """Model index spaces: every dataset item (dataset order) and the users with >= 1 train positive (sorted)."""

    items: np.ndarray
    users: np.ndarray
    cold_users: int

    def __post_init__(self) -> None:
        self._items, self._users = pd.Index(self.items), pd.Index(self.users)

    def item_index(self, rows: pd.DataFrame) -> np.ndarray:
        return self._items.get_indexer(rows[S.ITEM_ID]).astype(np.int64)

    def user_index(self, rows: pd.DataFrame) -> np.ndarray:
        """-1 for users outside the index (no train positives)."""
        return self._users.get_indexer(rows[S.USER_ID]).astype(np.int64)


def index_rows(ds: Dataset, train: pd.DataFrame) -> Indexed:
    users = np.unique(train.loc[train[S.POSITIVE], S.USER_ID].to_numpy().astype(str))
    everyone = set(ds.interactions[S.USER_ID]) | (set(ds.users[S.USER_ID]) if ds.users is not None else set())
    return Indexed(ds.items[S.ITEM_ID].to_numpy().astype(str), users, len(everyone) - len(users))


def interaction_csr(ix: Indexed, rows: pd.DataFrame, n_users: int, n_items: int) -> sp.csr_matrix:
    """Binary (n_users, n_items) CSR of the rows' (user, item) pairs, rows of unindexed users dropped."""
    u, i = ix.user_index(rows), ix.item_index(rows)
    ok = u >= 0
    m = sp.csr_matrix((np.ones(int(ok.sum()), dtype=np.float32), (u[ok], i[ok])), shape=(n_users, n_items))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def _neighbours(ds: Dataset, cfg: RunConfig) -> tuple[np.ndarray, np.ndarray] | None:
    if not ds.has_coordinates:
        warnings.warn("train.hard_negative_ratio > 0 but the items have no lat/lon; using uniform negatives",
                      GeotowerWarning, stacklevel=3)
        return None
    return geo_neighbours(ds.items[S.LAT].to_numpy(float), ds.items[S.LON].to_numpy(float), cfg.train.hard_negative_km)


def _check_config(cfg: RunConfig) -> None:
    if cfg.train.device != "cpu":
        raise ConfigError(f"train.device: only \"cpu\" is supported, got {cfg.train.device!r}")
    if cfg.train.n_negatives < 0 or cfg.model.n_layers < 0 or cfg.train.patience < 0 or cfg.train.threads < 0:
        raise ConfigError("train.n_negatives, model.n_layers, train.patience and train.threads must be >= 0")
    if cfg.train.loss == "bpr" and cfg.train.n_negatives < 1:
        raise ConfigError("train.n_negatives: the bpr loss needs at least 1 negative per positive")
    m = cfg.model
    if not (m.use_item_features or m.use_item_id):
        raise ConfigError("model: the item tower needs model.use_item_features or model.use_item_id")


def _encoders(ds: Dataset, train: pd.DataFrame, users: np.ndarray, cfg: RunConfig
              ) -> tuple[TableEncoder, np.ndarray, np.ndarray, TableEncoder | None, np.ndarray]:
    """Fit item/user encoders on train rows; encode all items and the model's users (unknown users -> zeros)."""
    f, nan = cfg.features, cfg.data.nan_policy
    spec = ds.spec.items
    item_enc = TableEncoder(S.ITEM_ID, spec.multi_label, spec.categorical, spec.exclude, f.geo_encoding,
                            f.grid_cells_m, nan, cfg.seed)
    item_enc.fit(ds.items[ds.items[S.ITEM_ID].isin(train[S.ITEM_ID])])
    enc = item_enc.transform(ds.items)
    if ds.users is None:
        return item_enc, enc.dense, enc.cells, None, np.zeros((len(users), 0), dtype=np.float32)
    us = ds.spec.users
    user_enc = TableEncoder(S.USER_ID, us.multi_label, us.categorical, us.exclude, "none", f.grid_cells_m, nan,
                            cfg.seed)
    table = ds.users[ds.users[S.USER_ID].isin(users)]
    user_enc.fit(table)
    dense = np.zeros((len(users), user_enc.dense_dim), dtype=np.float32)
    pos = pd.Index(users).get_indexer(table[S.USER_ID])
    dense[pos] = user_enc.transform(table).dense
    return item_enc, enc.dense, enc.cells, user_enc, dense


def _tower_spec(cfg: RunConfig, n_items: int, n_users: int, item_enc: TableEncoder, user_dim: int,
                has_time: bool) -> TowerSpec:
    m = cfg.model
    return TowerSpec(n_items, n_users, item_enc.dense_dim, user_dim, item_enc.cell_vocab_sizes, m.cell_dim,
                     m.embed_dim, m.hidden_dim, m.n_layers, m.dropout, m.use_item_id, m.use_user_id,
                     m.use_item_features, m.use_history, m.id_dropout, m.normalize, m.temperature,
                     len(m.trend_half_lives_days) if has_time else 0, m.members, m.item_bias)


def _train_data(ix: Indexed, rows: pd.DataFrame, cfg: RunConfig, neighbours: Any) -> TrainData:
    u, i = ix.user_index(rows), ix.item_index(rows)
    ok = u >= 0  # rows of users without train positives are not trained on
    times = rows[S.TIMESTAMP].to_numpy()[ok] if S.TIMESTAMP in rows.columns else None
    return build_train_data(u[ok], i[ok], rows[S.POSITIVE].to_numpy()[ok],
                            confidence(rows[S.WEIGHT].to_numpy()[ok], cfg.train.confidence),
                            len(ix.users), len(ix.items), cfg.train.loss, neighbours, times,
                            cfg.model.trend_half_lives_days)


def confidence(weight: np.ndarray, kind: str) -> np.ndarray:
    """Loss weight of each row from its confidence weight (``train.confidence``)."""
    w = np.asarray(weight, dtype=np.float32)
    if kind == "none":
        return np.ones_like(w)
    if kind == "log1p":
        return (1.0 + np.log1p(np.maximum(w, 0.0))).astype(np.float32)
    return w


def _new_model(spec: TowerSpec, item_dense: np.ndarray, item_cells: np.ndarray, user_dense: np.ndarray,
               data: TrainData, cfg: RunConfig, trend_weight: torch.Tensor | None = None, seed: int | None = None
               ) -> tuple[TwoTower, torch.optim.Optimizer]:
    """Seeded towers for ``data`` (trained-item mask, trend features) and their Adam optimizer.

    The trend weights and item biases are scalars on a log-count scale; at the towers' learning rate they would move
    too little in the ~100 steps small data sets train for, so they learn 10x faster (without weight decay).
    Given ``trend_weight`` (calibrated on validation), the trend weights are fixed instead.
    """
    known = np.zeros(len(item_dense), dtype=np.float32)
    known[data.hist_items.numpy()] = 1.0
    torch.manual_seed(cfg.seed if seed is None else seed)
    model = TwoTower(spec, torch.from_numpy(item_dense), torch.from_numpy(item_cells), torch.from_numpy(user_dense),
                     torch.from_numpy(known))
    if model.trend_weight is not None and data.trend_now is not None:
        model.set_trend(data.trend_table, data.trend_now)
    if model.trend_weight is not None and trend_weight is not None:
        model.trend_weight.data.copy_(trend_weight)
        model.trend_weight.requires_grad_(False)
    if model.item_bias is not None:  # start from the smoothed log-popularity; training refines it
        counts = torch.bincount(data.items, minlength=spec.n_items).float()
        model.item_bias.data.copy_(torch.log1p(counts) - torch.log1p(counts).mean())
    t = cfg.train
    fast = [p for p in (model.trend_weight, model.item_bias) if p is not None and p.requires_grad]
    rest = [p for p in model.parameters() if all(p is not f for f in fast)]
    groups: list[dict[str, Any]] = [{"params": rest}]
    if fast:
        groups.append({"params": fast, "lr": t.lr * TREND_LR_FACTOR, "weight_decay": 0.0})
    return model, torch.optim.Adam(groups, lr=t.lr, weight_decay=t.weight_decay)


def _validator(ix: Indexed, fit_data: TrainData, fit_rows: pd.DataFrame, val_rows: pd.DataFrame, cfg: RunConfig
               ) -> Callable[[torch.nn.Module], dict[str, float]] | None:
    """The injected validation function: NDCG@K etc. of val positives, masking fit-seen items."""
    n_u, n_i = len(ix.users), len(ix.items)
    pos_val = val_rows[val_rows[S.POSITIVE]]
    relevant = interaction_csr(ix, pos_val, n_u, n_i)
    seen = interaction_csr(ix, fit_rows, n_u, n_i)
    users = np.unique(ix.user_index(pos_val)[ix.user_index(pos_val) >= 0])
    if len(users) == 0:
        warnings.warn("the validation split has no positives of known users; early stopping is disabled",
                      GeotowerWarning, stacklevel=3)
        return None

    def validate(model: torch.nn.Module) -> dict[str, float]:
        item_emb = model.all_item_embeddings().numpy()
        user_emb = model.user_embeddings(fit_data.hist_indptr, fit_data.hist_items,
                                         fit_data.hist_weights if cfg.model.history_weighted else None).numpy()
        metrics = evaluate_embeddings(user_emb, item_emb, users, relevant, seen, cfg.eval.k)
        return {k: float(v) for k, v in metrics.items()}

    return validate


def _calibrate_trend(model: TwoTower, ix: Indexed, fit_data: TrainData, parts: Parts, cfg: RunConfig
                     ) -> torch.Tensor | None:
    """Trend weights refit on the validation rows (see :func:`geotower.model.trend.calibrate_weights`), or None."""
    if model.trend_weight is None or fit_data.trend_now is None or not cfg.train.calibrate_trend:
        return None
    pv = parts.val[parts.val[S.POSITIVE]]
    u, i = ix.user_index(pv), ix.item_index(pv)
    ok = u >= 0
    if not ok.any():
        return None
    n_u, n_i = len(ix.users), len(ix.items)
    seen = interaction_csr(ix, parts.fit, n_u, n_i)
    seen_keys = np.repeat(np.arange(n_u, dtype=np.int64), np.diff(seen.indptr)) * n_i + seen.indices
    with torch.no_grad():
        items = model.all_item_embeddings()[:, :-1]  # drop the prior column: it is what gets refit
        users = model.user_embeddings(fit_data.hist_indptr, fit_data.hist_items,
                                      fit_data.hist_weights if cfg.model.history_weighted else None)[:, :-1]
    return calibrate_weights(users, items, fit_data.trend_now, torch.from_numpy(u[ok]), torch.from_numpy(i[ok]),
                             torch.from_numpy(np.sort(seen_keys)), model.trend_weight.detach(), seed=cfg.seed)


def _fresh_or_resume(out: Path, cfg: RunConfig, resume: bool, ckpt: Checkpointer) -> LoopState | None:
    ckpt_dir = out / "checkpoints"
    if resume:
        if (out / artifacts.CONFIG_JSON).exists():
            old, new = artifacts.read_json(out / artifacts.CONFIG_JSON), cfg.to_dict()
            for d in (old, new):  # thread count changes speed, not the run
                d.get("train", {}).pop("threads", None)
            if old != new:
                changed = sorted(f"{s}.{k}" for s in new if isinstance(new[s], dict)
                                 for k in new[s] if old.get(s, {}).get(k) != new[s][k])
                raise ConfigError(f"--resume: the config differs from the one {out} was started with: {changed}")
        state = ckpt.restore()
        if state is None:
            warnings.warn(f"--resume: no complete checkpoint in {ckpt_dir}; starting from scratch",
                          GeotowerWarning, stacklevel=3)
        return state
    for e in completed_epochs(ckpt_dir):  # a fresh run must not mix with an older one's checkpoints
        for suffix in (".json", ".safetensors"):
            (ckpt_dir / f"epoch_{e:04d}{suffix}").unlink(missing_ok=True)
    return None


def train_run(data_dir: str | Path, out_dir: str | Path, cfg: RunConfig, resume: bool = False,
              progress: bool = True) -> TrainResult:
    """Train the two towers on a dataset folder and write the run folder atomically.

    Everything is written into ``.<RUN>.partial`` beside ``out_dir`` and swapped in complete at the end
    (:func:`geotower.artifacts.staged_folder`), so a killed retrain leaves the previous run intact; ``resume``
    continues from that staging folder's checkpoints (or from a complete run's).
    """
    out = Path(out_dir)
    with artifacts.staged_folder(out, "run", keep_existing=resume, resumable=True, reuse=resume,
                                 inputs=[data_dir]) as stage:
        result = _train_into(data_dir, stage, cfg, resume, progress)
    return dataclasses.replace(result, run_dir=out, paths={"run": out, "manifest": out / artifacts.MANIFEST})


def _train_into(data_dir: str | Path, out_dir: str | Path, cfg: RunConfig, resume: bool = False,
                progress: bool = True) -> TrainResult:
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
    _check_config(cfg)
    if cfg.train.threads > 0:
        torch.set_num_threads(cfg.train.threads)
    data_dir, out = Path(data_dir).resolve(), Path(out_dir)
    ds = load_dataset(data_dir, strict=cfg.data.strict)
    parts = split_rows(ds, cfg)
    if not parts.train[S.POSITIVE].any():
        raise DataError("no positive interactions in the train split", path=data_dir)
    ix = index_rows(ds, parts.train)
    item_enc, item_dense, item_cells, user_enc, user_dense = _encoders(ds, parts.train, ix.users, cfg)
    if not cfg.model.use_item_id and item_enc.dense_dim + len(item_enc.cell_vocab_sizes) == 0:
        raise ConfigError("model.use_item_id=false but the items have no feature columns to learn from "
                          f"(features.geo_encoding={cfg.features.geo_encoding!r}); enable one of them")
    neighbours = _neighbours(ds, cfg) if cfg.train.hard_negative_ratio > 0 else None
    fit_data = _train_data(ix, parts.fit, cfg, neighbours)
    spec = _tower_spec(cfg, len(ix.items), len(ix.users), item_enc, user_dense.shape[1], ds.has_timestamps)
    model, optimizer = _new_model(spec, item_dense, item_cells, user_dense, fit_data, cfg)
    gen = torch.Generator().manual_seed(cfg.seed)
    t = cfg.train
    sampler = _sampler(fit_data, cfg, gen)
    ckpt = Checkpointer(out / "checkpoints", model, optimizer, gen)
    state = _fresh_or_resume(out, cfg, resume, ckpt)
    artifacts.write_json(out / artifacts.CONFIG_JSON, cfg.to_dict())
    hparams = {k: v for sec in ("model", "train") for k, v in
               {f"{sec}.{k}": v for k, v in cfg.to_dict()[sec].items()}.items()}
    tb = TensorBoardLogger(out / "tb", hparams, purge_step=(state.step + 1) if state else None)
    validate = _validator(ix, fit_data, parts.fit, parts.val, cfg)
    state = fit(model, optimizer, sampler, two_tower_loss(t.loss), t.epochs, t.patience if validate else 0,
                validate, "ndcg", [tb, ckpt], state, progress)
    trend_weight = _calibrate_trend(model, ix, fit_data, parts, cfg) if validate is not None else None
    if trend_weight is not None:
        model.trend_weight.data.copy_(trend_weight)  # type: ignore[union-attr]
    refit = t.refit and validate is not None and len(parts.val) > 0 and state.best_epoch > 0
    final_data = _train_data(ix, parts.train, cfg, neighbours) if refit else fit_data  # built once for all members
    epochs = state.best_epoch if state.best_epoch > 0 else state.epoch
    if refit:
        model = _train_fixed(final_data, cfg, spec, item_dense, item_cells, user_dense, epochs, progress,
                             trend_weight, cfg.seed)
    members = [model] + [_train_fixed(final_data, cfg, spec, item_dense, item_cells, user_dense, epochs, progress,
                                      trend_weight, cfg.seed + m) for m in range(1, cfg.model.members)]
    final = TowerEnsemble(members) if len(members) > 1 else model
    all_data = final_data if refit else _train_data(ix, parts.train, cfg, None)
    return _finish(out, ds, cfg, ix, final, item_enc, user_enc, parts, state, all_data, time.perf_counter() - t0)


def _train_fixed(data: TrainData, cfg: RunConfig, spec: TowerSpec, item_dense: np.ndarray, item_cells: np.ndarray,
                 user_dense: np.ndarray, epochs: int, progress: bool, trend_weight: torch.Tensor | None, seed: int
                 ) -> TwoTower:
    """Train from ``seed`` on ``data`` for the epoch count early stopping chose (no validation, no checkpoints).

    Used for the refit on all training rows (early stopping needs rows the model does not see; without a refit
    those rows, with timestamps the most recent ones, would never shape the weights, and users whose positives all
    fell there would keep untrained IDs) and for the extra members of an ensemble (``model.members``).
    Deterministic, so a resumed run repeats it exactly.
    """
    model, optimizer = _new_model(spec, item_dense, item_cells, user_dense, data, cfg, trend_weight, seed)
    sampler = _sampler(data, cfg, torch.Generator().manual_seed(seed))
    fit(model, optimizer, sampler, two_tower_loss(cfg.train.loss), epochs, progress=progress)
    return model


def _sampler(data: TrainData, cfg: RunConfig, gen: torch.Generator) -> BatchSampler:
    """The training batches of ``data`` as configured (exact softmax up to ``train.full_softmax_max_items``)."""
    t = cfg.train
    return BatchSampler(data, t.loss, t.batch_size, t.n_negatives, t.hard_negative_ratio, t.logq_correction,
                        t.history_leave_one_out, cfg.model.history_weighted, gen,
                        full_softmax=data.n_items <= t.full_softmax_max_items)


def _finish(out: Path, ds: Dataset, cfg: RunConfig, ix: Indexed, model: TwoTower | TowerEnsemble,
            item_enc: TableEncoder, user_enc: TableEncoder | None, parts: Parts, state: LoopState,
            all_data: TrainData, wall: float) -> TrainResult:
    """Embed with all train positives (``all_data``) as history, then write the bundle, manifest and curves."""
    if all_data.trend_now is not None:  # the prior "now" = after every training row (without refit too)
        model.set_trend(None, all_data.trend_now)
    with torch.no_grad():
        item_emb = model.all_item_embeddings().numpy()
        user_emb = model.user_embeddings(all_data.hist_indptr, all_data.hist_items,
                                         all_data.hist_weights if cfg.model.history_weighted else None).numpy()
    n_u, n_i = len(ix.users), len(ix.items)
    pos = parts.train[S.POSITIVE].to_numpy()
    popularity = np.bincount(ix.item_index(parts.train)[pos], minlength=n_i).astype(np.float32)
    cols = [c for c in (S.ITEM_ID, S.NAME, S.LAT, S.LON) if c in ds.items.columns]
    save_bundle(out, BundleParts(model, item_enc, user_enc, ds.items[cols], ix.users, item_emb, user_emb,
                                 interaction_csr(ix, parts.train, n_u, n_i), popularity))
    best = next((r for r in state.history if r["epoch"] == state.best_epoch), {})
    val_metrics = {k: v for k, v in best.items() if k not in ("epoch", "loss")}
    write_curves(out / "curves.png", state.history, cfg.eval.k, state.best_epoch)
    extra = {"dataset_dir": str(ds.files["items"].parent.resolve()), "split": parts.info, "refit": cfg.train.refit,
             "rows": {"train": len(parts.train), "test": parts.n_test, "fit": len(parts.fit), "val": len(parts.val)},
             "n_users": n_u, "n_items": n_i, "cold_users": ix.cold_users, "best_epoch": state.best_epoch,
             "epochs_run": state.epoch, "val_metrics": val_metrics, "history": state.history, "wall_time_s": wall}
    members = list(model.members) if isinstance(model, TowerEnsemble) else [model]
    extra["members"] = len(members)
    if members[0].trend_weight is not None:
        weights = [[round(float(w), 6) for w in m.trend_weight.detach()] for m in members]  # type: ignore[union-attr]
        extra["trend"] = {"half_lives_days": list(cfg.model.trend_half_lives_days), "weights": weights[0],
                          "member_weights": weights, "calibrated": cfg.train.calibrate_trend}
    artifacts.write_manifest(out, cfg.to_dict(), ds.fingerprint(), extra)
    return TrainResult(out, state.best_epoch, state.epoch, val_metrics, wall, n_u, n_i, ix.cold_users,
                       state.history, {"run": out, "manifest": out / artifacts.MANIFEST})
