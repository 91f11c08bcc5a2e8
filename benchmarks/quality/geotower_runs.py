"""geotower rows of the quality benchmark: ``train_run`` on the dataset folder, scored from the saved bundle.

The folder handed to ``train_run`` is the whole training file with ``eval.test_fraction=0.2`` and ``seed=0``, so its
held-out part is exactly the validation part of ``tasks.load_task`` (same ``holdout_split`` call): geotower trains on
the same rows as the peers and never sees the validation rows (``protocol.split``). Its early-stopping split is carved
from those training rows (``train.val_fraction``), which is legitimate. We check the agreement by comparing the run's
``seen`` matrix with ours, and score with the same ``evaluate_scorer`` as the peers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from geotower.config import PRESETS, resolve

from .peers import Result, _row, evaluate, score_table
from .tasks import SEED, VAL_FRACTION, Task

BASE = [f"eval.test_fraction={VAL_FRACTION}", f"seed={SEED}", "train.threads=1"]  # 1: see docs/quality.md

# one-factor-at-a-time around the defaults: each row changes one knob, so a win is attributable
SWEEP: list[tuple[str, list[str]]] = [
    ("default", []),
    ("loss=bpr", ["train.loss='bpr'", "train.n_negatives=1"]),
    ("loss=bce", ["train.loss='bce'"]),
    ("temperature=0.05", ["model.temperature=0.05"]),
    ("temperature=0.2", ["model.temperature=0.2"]),
    ("use_history=false", ["model.use_history=false"]),
    ("use_user_id=false", ["model.use_user_id=false"]),
    ("embed_dim=64", ["model.embed_dim=64"]),
    ("lr=3e-3", ["train.lr=3e-3"]),
    ("n_layers=1", ["model.n_layers=1"]),
    ("dropout=0.2", ["model.dropout=0.2"]),
    ("id_dropout=0", ["model.id_dropout=0.0"]),
    ("id_dropout=0.3", ["model.id_dropout=0.3"]),
    ("batch_size=512", ["train.batch_size=512"]),
    ("logq=false", ["train.logq_correction=false"]),
]
SHORT = ["loss=bpr", "use_history=false", "n_layers=1", "temperature=0.05", "dropout=0.2", "use_user_id=false"]
SHORT2 = ["logq=false", "use_user_id=false", "id_dropout=0.3"]
QUICK = ["train.patience=2"]  # the short sweep stops earlier; the best epoch is restored either way
# "refit": early stopping picked 2-3 epochs on both data sets; train that long on (almost) all training rows
REFIT = ["train.val_fraction=0.01", "train.epochs=3", "train.patience=0"]
GRIDS: dict[str, list[tuple[str, list[str]]]] = {
    "geotower-refit": [("refit 3 epochs", REFIT),
                       ("refit 3 epochs, use_user_id=false", [*REFIT, "model.use_user_id=false"]),
                       ("batch_size=512", ["train.batch_size=512", *QUICK])],
    "geotower-batch": [(f"batch_size={b}", [f"train.batch_size={b}", *QUICK]) for b in (256, 1024)],
    "geotower-b512": [
        ("batch_size=512, n_layers=1", ["train.batch_size=512", "model.n_layers=1", *QUICK]),
        ("batch_size=512, weight_decay=1e-4", ["train.batch_size=512", "train.weight_decay=1e-4", *QUICK]),
    ],
    "geotower-geo": [("hard_negative_ratio=0.3", ["train.hard_negative_ratio=0.3", *QUICK])],
    "geotower-default": SWEEP[:1],
    # second sweep (docs/quality.md, "Time-decayed popularity and ensembles"): trend half-lives, calibration,
    # seeds, ensembles and the Singapore knobs; labels match the table there
    "geotower-trend": [
        ("trend off", ["model.trend_half_lives_days=[]"]),
        ("trend 1/4/16/64 d", ["model.trend_half_lives_days=[1, 4, 16, 64]"]),
        ("trend 1/4/16/64 d, calibrated", ["model.trend_half_lives_days=[1, 4, 16, 64]", "train.calibrate_trend=true"]),
        ("trend 0.5/2/8/32 d", ["model.trend_half_lives_days=[0.5, 2, 8, 32]"]),
        ("trend 0.25/1/4 d", ["model.trend_half_lives_days=[0.25, 1, 4]"]),
        ("trend 3 d", ["model.trend_half_lives_days=[3]"]),
        ("trend 0.5/2/8 d, calibrated", ["train.calibrate_trend=true"]),
        ("members=1, seed=1", ["model.members=1", "seed=1"]),
        ("members=1, seed=2", ["model.members=1", "seed=2"]),
        ("members=1", ["model.members=1"]),
        ("members=2", ["model.members=2"]),
        ("members=3, seed=1", ["seed=1"]),
        ("item_bias", ["model.item_bias=true"]),
    ],
    "geotower-sg2": [
        ("members=1", ["model.members=1"]),
        ("members=1, cell_dim=64", ["model.members=1", "model.cell_dim=64"]),
        ("members=1, embed_dim=256", ["model.members=1", "model.embed_dim=256"]),
        ("members=1, temperature=0.15 / 0.25 / 0.3", ["model.members=1", "model.temperature=0.15"]),
        ("members=1, confidence=log1p", ["model.members=1", "train.confidence='log1p'"]),
        ("members=1, confidence=none", ["model.members=1", "train.confidence='none'"]),
        ("members=1, history_weighted", ["model.members=1", "model.history_weighted=true"]),
        ("members=1, id_dropout=0.3", ["model.members=1", "model.id_dropout=0.3"]),
        ("members=1, item_bias", ["model.members=1", "model.item_bias=true"]),
        ("members=1, 5 grid sizes", ["model.members=1", "features.grid_cells_m=[250, 500, 1000, 2000, 4000]"]),
        ("members=2", ["model.members=2"]),
        ("members=3, cell_dim=64", ["model.cell_dim=64"]),
    ],
    # third sweep (docs/quality.md, "Fast defaults"): the learning rate once steps are cheap
    "geotower-speed": [("lr=3e-3", ["train.lr=3e-3"]), ("lr=1e-2", ["train.lr=1e-2"])],
    # fifth sweep (docs/quality.md, "Fewer steps"): fewer early-stopping epochs and larger batches
    "geotower-fast": [
        ("default", []),
        ("patience=1", ["train.patience=1"]),
        ("batch_size=1024, lr=0.02", ["train.batch_size=1024", "train.lr=0.02"]),
        ("batch_size=1024, lr=0.02, patience=1", ["train.batch_size=1024", "train.lr=0.02", "train.patience=1"]),
    ],
    # sixth sweep: a fixed epoch budget on all rows (no validation inside train), linear lr decay
    "geotower-budget": [
        (f"no early stopping, {e} epochs{', lr decay' if d else ''}",
         ["train.early_stopping=false", f"train.epochs={e}", f"train.lr_decay={str(d).lower()}"])
        for e, d in ((3, True), (4, True), (6, True), (3, False))],
    # sixth round (docs/quality.md): fewer matmul FLOPs (smaller tables) or no refit
    "geotower-flops": [
        ("embed_dim=64", ["model.embed_dim=64"]),
        ("cell_dim=32", ["model.cell_dim=32"]),
        ("refit=false", ["train.refit=false"]),
        ("refit=false, embed_dim=64", ["train.refit=false", "model.embed_dim=64"]),
    ],
    # one member, now that a single member is its refit (before 2026-12-03 it was the early-stopped model)
    "geotower-members": [("members=1", ["model.members=1"]), ("members=3", ["model.members=3"])],
    # seventh round: cheaper structures (no history pooling, one member)
    "geotower-lean": [
        ("use_history=false", ["model.use_history=false"]),
        ("use_history=false, members=1", ["model.use_history=false", "model.members=1"]),
    ],
    "geotower-lean2": [
        ("use_history=false, batch_size=1024, lr=0.02",
         ["model.use_history=false", "train.batch_size=1024", "train.lr=0.02"]),
        ("use_history=false, batch_size=1024", ["model.use_history=false", "train.batch_size=1024"]),
        ("use_history=false, cells 1+4 km", ["model.use_history=false", "features.grid_cells_m=[1000.0, 4000.0]"]),
    ],
    # eighth round (docs/quality.md): row-sparse (lazy) Adam for the ID tables, as catalogues of 50k+ get it
    "geotower-sparse": [
        ("sparse IDs", ["train.sparse_ids_min_items=1", "train.sparse_ids_min_users=1"]),
        ("sparse user IDs", ["train.sparse_ids_min_users=1"]),
    ],
    # eighth round: one refit trajectory, its last three epochs as the members (benchmarks/quality/snapshots.py)
    "geotower-snapshots": [("members=1, snapshots=3", ["model.members=1", "model.snapshots=3"]),
                           ("snapshots=2", ["model.members=1", "model.snapshots=2"])],
    "geotower-sweep": SWEEP,
    "geotower-short": [(label, [*dict(SWEEP)[label], *QUICK]) for label in SHORT],  # most telling first
    "geotower-short2": [(label, [*dict(SWEEP)[label], *QUICK]) for label in SHORT2],
}
# The grids above were run on the defaults of their day: early stopping + refit (until the ninth round). They keep
# reproducing their rows on those settings; a row's own overrides come after and win.
EARLY = list(PRESETS["early_stopping"])
GRIDS = {name: [(label, [*EARLY, *sets]) for label, sets in rows] for name, rows in GRIDS.items()}
GRIDS["geotower-default"] = SWEEP[:1]
# ninth round (docs/quality.md): the fixed budget against the early stopping it replaced, and its neighbours
GRIDS["geotower-early-stopping"] = [("early stopping + refit (the eighth round's defaults)", EARLY)]
GRIDS["geotower-budget2"] = [("epochs=4", ["train.epochs=4"]), ("weight_decay=3e-4", ["train.weight_decay=3e-4"])]


def bundle_scorer(task: Task, run_dir: Path) -> tuple[Any, bool]:
    """Scorer over the task's indices from a saved run, and whether the run's train-seen pairs equal ours."""
    from geotower.model.bundle import load_bundle

    bundle = load_bundle(run_dir)
    score, u_pos, i_pos = embedding_scorer(task, (bundle.user_ids, bundle.user_emb), (bundle.item_ids, bundle.item_emb))
    return score, _same_seen(task, bundle.seen, u_pos, i_pos)


def embedding_scorer(task: Task, users: tuple[Any, np.ndarray], items: tuple[Any, np.ndarray]
                     ) -> tuple[Any, np.ndarray, np.ndarray]:
    """Scorer over the task's indices from a run's (ids, embeddings) of users and items, and the task -> run
    positions of its users (-1: no embedding, scored 0) and items."""
    u_pos = pd.Index(np.asarray(users[0], dtype=str)).get_indexer(task.user_ids)
    i_pos = pd.Index(np.asarray(items[0], dtype=str)).get_indexer(task.item_ids)
    if (i_pos < 0).any():
        raise RuntimeError(f"{int((i_pos < 0).sum())} dataset items have no embedding")
    item = np.asarray(items[1], dtype=np.float32)[i_pos]
    user = np.zeros((len(task.user_ids), item.shape[1]), dtype=np.float32)
    user[u_pos >= 0] = users[1][u_pos[u_pos >= 0]]
    return score_table(task, user, item), u_pos, i_pos


def _same_seen(task: Task, seen: sp.csr_matrix, u_pos: np.ndarray, i_pos: np.ndarray) -> bool:
    """Does the run's train-seen matrix hold exactly our training pairs (for the users it indexes)?"""
    have = np.flatnonzero(u_pos >= 0)
    mapped = (sp.csr_matrix(seen)[u_pos[have]][:, i_pos] > 0).astype(np.int8)
    ours = (task.seen[have] > 0).astype(np.int8)
    return bool((mapped != ours).nnz == 0)


def time_to_quality(run_dir: Path, start: float) -> list[list[float]]:
    """[seconds since ``train_run`` started, epoch, internal validation NDCG@10] per validated epoch.

    Read from the run's TensorBoard events (their wall times), so nothing extra is timed inside training. The
    curve covers the early-stopping phase; the refit after it adds the rest of the fit seconds.
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    curve = []
    for path in sorted((run_dir / "tb").glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(path), size_guidance={"scalars": 0})
        acc.Reload()
        if "epoch/ndcg" in acc.Tags()["scalars"]:
            curve += [[round(e.wall_time - start, 1), e.step, round(e.value, 4)] for e in acc.Scalars("epoch/ndcg")]
    return curve


def run_one(task: Task, label: str, overrides: list[str], out_dir: Path) -> Result:
    """Train one config on the task's dataset folder and score it on the validation part."""
    from geotower.pipeline.train import train_run

    cfg = resolve(None, [*BASE, *overrides])
    t0, wall0 = time.perf_counter(), time.time()
    train_run(task.data_dir, out_dir, cfg)
    fit_s = time.perf_counter() - t0
    score, split_ok = bundle_scorer(task, out_dir)
    row = _row("geotower " + label, {"overrides": " ".join(overrides) or "(defaults)"}, evaluate(task, score), fit_s)
    row["split_ok"] = split_ok
    row["curve"] = time_to_quality(out_dir, wall0)
    return row


def run_geotower(task: Task, grid: str, on_row: Callable[[list[Result]], None] | None = None) -> list[Result]:
    """All configs of the named grid; runs go to ``<work>/runs/<dataset>/<label>``; ``on_row`` sees progress."""
    rows: list[Result] = []
    for label, overrides in GRIDS[grid]:
        out_dir = task.data_dir.parent.parent / "runs" / task.name / label.replace("=", "_")
        row = run_one(task, label, overrides, out_dir)
        print(f"{task.name} geotower {label}: ndcg={row['ndcg']:.4f} recall={row['recall']:.4f} "
              f"fit={row['fit_s']:.0f}s split_ok={row['split_ok']}", flush=True)
        rows.append(row)
        if on_row is not None:
            on_row(rows)
    return rows
