"""``geotower evaluate``: a trained run and its baselines, judged on the same held-out users by the same code.

The run's held-out split is recomputed by :func:`geotower.ingest.protocol.split` from the dataset folder recorded in
its manifest, or a test file
is read by the same ``dataset.toml`` rules. Ground truth per user is the test positives they had not seen (any
rating) in train; every model ranks all items with train-seen items masked, and only warm users (>= 1 train
positive and >= 1 ground-truth item) are scored; cold ones are counted. Baselines are tuned on a validation split
carved from the train rows, never on the test rows. This module reads the run and its test set and writes the
report; the rows themselves (geotower's, the baselines') are scored by :mod:`geotower.pipeline.evaluate_rows`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from geotower import artifacts
from geotower import schema as S
from geotower.config import RunConfig, from_dict
from geotower.errors import DataError, GeotowerError, GeotowerWarning
from geotower.evaluate.heldout import HeldOut, build_heldout
from geotower.evaluate.metrics import check_k
from geotower.evaluate.report import ModelResult, log_tensorboard, write_report
from geotower.ingest.dataset import Dataset, load_dataset, read_interactions
from geotower.ingest.protocol import known_users, split
from geotower.pipeline.evaluate_rows import baseline_rows, geotower_bands, geotower_row, paired_vs_best

EVAL_DIR = "eval"


@dataclass
class EvalResult:
    """Metrics of geotower and its baselines on one test set, plus the protocol counts that qualify them."""

    run_dir: Path
    k: int
    rows: list[ModelResult]
    users: int  # warm users evaluated
    cold_users: int  # users with ground truth but no train positive (not evaluated)
    unknown_users: int  # distinct test-file users not in the dataset (dropped)
    unknown_items: int  # distinct test-file items not in the catalogue (dropped)
    test_rows: int
    test_source: str
    paths: dict[str, Path] = field(default_factory=dict)

    def row(self, model: str) -> ModelResult:
        return next(r for r in self.rows if r.model == model)

    def summary(self) -> dict[str, Any]:
        return {"test": self.test_source, "test_rows": self.test_rows, "users_evaluated": self.users,
                "cold_users": self.cold_users, "unknown_users": self.unknown_users,
                "unknown_items": self.unknown_items}


# --- loading the run and its test set -------------------------------------------------------------
def _load_run(run_dir: Path) -> tuple[RunConfig, dict[str, Any], Dataset]:
    manifest = artifacts.read_json(run_dir / artifacts.MANIFEST)
    cfg = from_dict(artifacts.read_json(run_dir / artifacts.CONFIG_JSON))
    if "dataset_dir" not in manifest:
        raise GeotowerError(f"{run_dir / artifacts.MANIFEST} has no dataset_dir; cannot recompute the split")
    return cfg, manifest, load_dataset(manifest["dataset_dir"], strict=cfg.data.strict)


def _holdout(ds: Dataset, cfg: RunConfig, test_file: Path | None) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """The run's training rows and its held-out rows (empty when a test file will replace them)."""
    rows = split(ds, cfg)
    method, cutoff = rows.info["method"], rows.info["cutoff"]
    if test_file is not None and rows.n_test:
        warnings.warn(f"the run was trained without its {rows.n_test} held-out rows (eval.test_fraction="
                      f"{cfg.eval.test_fraction}); to judge later interactions from a file, train on everything "
                      "with --set eval.test_fraction=0", GeotowerWarning, stacklevel=3)
    if test_file is None and cfg.eval.test_fraction == 0:
        raise DataError("this run was trained on every interaction (eval.test_fraction=0), so it has no held-out "
                        "split; pass --test FILE", path=ds.files["interactions"])
    if rows.n_test == 0 and test_file is None:
        raise DataError(f"the held-out split is empty (method {method}, cutoff {cutoff}): "
                        "no interactions come after the cut; pass --test FILE", path=ds.files["interactions"])
    how = f"held-out {method} split, test_fraction {cfg.eval.test_fraction}"
    how += f", cutoff {cutoff}" if cutoff is not None else f", seed {cfg.seed}"
    return rows.train, rows.test, how


def _check_same_split(manifest: dict[str, Any], n_train: int, n_test: int) -> None:
    """Warn when the recomputed split differs from the one training recorded (the run would have seen test rows)."""
    rows = manifest.get("rows", {})
    recorded = (rows.get("train"), rows.get("test"))
    if None not in recorded and recorded != (n_train, n_test):
        warnings.warn(f"the recomputed held-out split has {n_train} train / {n_test} test rows but training recorded "
                      f"{recorded[0]} / {recorded[1]}; the metrics may include rows the model trained on",
                      GeotowerWarning, stacklevel=3)


def read_test_file(path: Path, ds: Dataset, item_ids: np.ndarray) -> tuple[pd.DataFrame, int, int]:
    """A test file judged by the dataset's rules; rows with unknown users/items are dropped and counted.

    Returns:
        (rows, distinct unknown users, distinct unknown items).

    Raises:
        DataError: unreadable file, a rating column missing while training had one, or no usable rows.
    """
    rows = read_interactions(path, ds.spec)
    if S.RATING in ds.interactions.columns and S.RATING not in rows.columns and len(rows):
        raise DataError("missing column: the training data has ratings, so the test rows need them too to tell "
                        "positives", path=path, column=S.RATING)
    bad_user = ~rows[S.USER_ID].isin(known_users(ds)).to_numpy()
    bad_item = ~rows[S.ITEM_ID].isin(set(item_ids)).to_numpy()
    n_users, n_items = rows.loc[bad_user, S.USER_ID].nunique(), rows.loc[bad_item, S.ITEM_ID].nunique()
    if n_users or n_items:
        warnings.warn(f"{path}: dropped {int((bad_user | bad_item).sum())} of {len(rows)} rows with {n_users} "
                      f"unknown users and {n_items} unknown items", GeotowerWarning, stacklevel=3)
    rows = rows.loc[~(bad_user | bad_item)].reset_index(drop=True)
    if len(rows) == 0:
        raise DataError("the test set is empty" + (" after dropping unknown users/items" if n_users + n_items
                                                   else ""), path=path)
    return rows, int(n_users), int(n_items)


def _all_users(ds: Dataset) -> np.ndarray:
    return np.array(sorted(known_users(ds)), dtype=str)


# --- the pipeline ------------------------------------------------------------------------------------
def evaluate_run(run_dir: str | Path, k: int | None = None, test_file: str | Path | None = None,
                 baselines: bool = False, progress: bool = True,
                 grids: Mapping[str, Mapping[str, Sequence[Any]]] | None = None) -> EvalResult:
    """Evaluate a run (and optionally the baselines) and write ``RUN/eval/{metrics.json,report.md,metrics.png}``.

    Args:
        run_dir: a run folder written by ``geotower train``.
        k: cut-off; defaults to the run's ``eval.k``.
        test_file: interactions to judge instead of the run's held-out split.
        baselines: also fit, tune and score the baselines named in the run's ``eval.baselines``.
        progress: show progress bars.
        grids: per-baseline tuning grids overriding :data:`geotower.evaluate.baselines.DEFAULT_GRIDS`.

    Raises:
        ConfigError: bad K. DataError: unreadable or empty test set, or no warm test user.
        ArtifactError: missing/corrupt run files or a dataset changed since training.
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise GeotowerError(f"run directory {run} does not exist")
    cfg, manifest, ds = _load_run(run)
    k = cfg.eval.k if k is None else k
    item_ids = ds.items[S.ITEM_ID].to_numpy().astype(str)
    check_k(k, len(item_ids))
    train, test, source = _holdout(ds, cfg, None if test_file is None else Path(test_file))
    _check_same_split(manifest, len(train), len(test))
    unknown_users = unknown_items = 0
    if test_file is not None:
        test, unknown_users, unknown_items = read_test_file(Path(test_file), ds, item_ids)
        source = f"file {test_file}"
    proto = build_heldout(train, test, _all_users(ds), item_ids)
    _require_users(proto, test, source)
    rows = [geotower_row(run, manifest, proto, k, progress)]
    if baselines:
        rows += baseline_rows(run, cfg, manifest, train, proto, k, progress=progress, grids=grids)
        paired_vs_best(rows)
    result = EvalResult(run, k, rows, users=len(proto.users), cold_users=proto.cold_users,
                        unknown_users=unknown_users, unknown_items=unknown_items, test_rows=len(test),
                        test_source=source)
    result.paths = write_report(run / EVAL_DIR, rows, k, result.summary(), geotower_bands(run, proto, ds, k))
    log_tensorboard(run / "tb", rows, k, int(manifest.get("best_epoch", 0) or 0))
    return result


def _require_users(proto: HeldOut, test: pd.DataFrame, source: str) -> None:
    if proto.relevant.nnz == 0:
        raise DataError(f"the test set ({source}) has no positive interactions ({len(test)} rows)")
    if len(proto.users) == 0:
        raise DataError(f"no warm test user in {source}: {proto.cold_users} users have unseen test positives but "
                        "none has a train positive")
