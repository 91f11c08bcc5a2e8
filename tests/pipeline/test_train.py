"""train_run end to end on a two-cluster places dataset, resume after a crash, the CLI, and bad input.

Items i00..i09 sit in cluster A (Helsinki centre), i10..i19 in cluster B ~5.5 km east; even users like cluster A,
odd users cluster B (7 positives each, rating 5) and rate one place of the other cluster 1. A model that learned
anything ranks, for every user, unseen places of their own cluster above the other cluster's.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from geotower import artifacts
from geotower.config import PRESETS, ModelConfig, RunConfig, resolve
from geotower.errors import ConfigError, DataError, GeotowerWarning
from geotower.ingest.dataset import DatasetSpec, TableSpec, write_dataset
from geotower.model.bundle import load_bundle
from geotower.pipeline import train as T

FAST = [*PRESETS["early_stopping"],
        "model.embed_dim=8", "model.hidden_dim=16", "model.n_layers=1", "model.cell_dim=4", "train.epochs=4",
        "train.batch_size=32", "train.lr=0.03", "train.patience=0", "train.val_fraction=0.3",
        "features.grid_cells_m=[500.0, 2000.0]"]
SPEC = DatasetSpec(items=TableSpec(multi_label={"cats": ", "}))


def clusters(n_users: int = 24) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(1)
    j = np.arange(20)
    items = pd.DataFrame({"item_id": [f"i{k:02d}" for k in j], "lat": 60.170 + (j % 10) * 0.0005,
                          "lon": np.where(j < 10, 24.940, 25.040), "stars": (j % 5).astype(float),
                          "cats": np.where(j < 10, "cafe, bar", "bar")})
    rows = []
    for u in range(n_users):
        own = rng.choice(10, size=7, replace=False) + (0 if u % 2 == 0 else 10)
        rows += [(f"u{u:02d}", f"i{k:02d}", 5.0) for k in own]
        rows.append((f"u{u:02d}", f"i{(own[0] + 10) % 20:02d}", 1.0))
    rows.append(("c0", "i00", 1.0))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating"]), items


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    inter, items = clusters()
    return write_dataset(tmp_path_factory.mktemp("data"), inter, items, SPEC)


@pytest.fixture(scope="module")
def cfg() -> RunConfig:
    return resolve(None, FAST)


@pytest.fixture(scope="module")
def run(data: Path, cfg: RunConfig, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, T.TrainResult]:
    out = tmp_path_factory.mktemp("run")
    return out, T.train_run(data, out, cfg, progress=False)


def test_learns_the_clusters(run: tuple[Path, T.TrainResult]) -> None:
    out, result = run
    b = load_bundle(out)
    scores = b.user_emb @ b.item_emb.T  # (24, 20)
    scores[b.seen.toarray() > 0] = -np.inf
    top = np.argsort(-scores, axis=1)[:, :3]
    own = (top < 10) == (np.arange(24)[:, None] % 2 == 0)
    assert own.mean() >= 0.9  # random ranking would give ~0.5
    assert result.val_metrics["ndcg"] > 0 and result.val_metrics["users"] > 0


def test_manifest_and_outputs(run: tuple[Path, T.TrainResult], data: Path) -> None:
    out, result = run
    m = artifacts.read_json(out / "manifest.json")
    assert m["dataset_dir"] == str(data.resolve())
    assert m["split"]["method"] == "random" and m["split"]["val_method"] == "random"
    assert m["cold_users"] == 1 and m["n_users"] == 24 and m["epochs_run"] == 4
    assert m["best_epoch"] == result.best_epoch and m["val_metrics"] == result.val_metrics
    assert m["rows"]["train"] + m["rows"]["test"] == 24 * 8 + 1
    assert artifacts.read_json(out / "config.json") == resolve(None, FAST).to_dict()
    assert list((out / "tb").rglob("events.out.tfevents.*"))
    assert (out / "curves.png").exists()
    assert [p.name for p in sorted((out / "checkpoints").iterdir())][-2:] == ["epoch_0004.json",
                                                                              "epoch_0004.safetensors"]


class Crash(Exception):
    pass


def test_resume_after_crash_gives_identical_weights(run: tuple[Path, T.TrainResult], data: Path, cfg: RunConfig,
                                                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ref, _ = run
    original = T.TensorBoardLogger.on_epoch_end

    def crash_at_3(self: T.TensorBoardLogger, state: T.LoopState, model: object) -> None:
        original(self, state, model)  # type: ignore[arg-type]
        if state.epoch == 3:  # before epoch 3's checkpoint: the last complete one is epoch 2
            raise Crash

    monkeypatch.setattr(T.TensorBoardLogger, "on_epoch_end", crash_at_3)
    with pytest.raises(Crash):
        T.train_run(data, tmp_path, cfg, progress=False)
    monkeypatch.undo()
    result = T.train_run(data, tmp_path, cfg, resume=True, progress=False)
    assert result.epochs_run == 4
    for name in ("model.safetensors", "item_embeddings.safetensors", "user_embeddings.safetensors"):
        a, b = artifacts.load_arrays(ref / name), artifacts.load_arrays(tmp_path / name)
        assert all(np.array_equal(a[k], b[k]) for k in a), name
    with pytest.raises(ConfigError, match="differs"):
        T.train_run(data, tmp_path, resolve(None, [*FAST, "train.lr=0.5"]), resume=True, progress=False)


def test_cli_train(data: Path, tmp_path: Path) -> None:
    from geotower._cli.train import train

    app = typer.Typer()  # the command without the error boundary of geotower.cli, so exceptions stay visible
    app.command("train")(train)
    app.command("noop")(lambda: None)  # a second command keeps "train" a named sub-command
    sets = [a for s in [*FAST, "train.epochs=1", "train.hard_negative_ratio=0.5"] for a in ("--set", s)]
    res = CliRunner().invoke(app, ["train", str(data), "--out", str(tmp_path / "r"), "--quiet", *sets])
    assert res.exit_code == 0, res.output
    assert "best epoch 1" in res.output and "1 cold users" in res.output
    res = CliRunner().invoke(app, ["train", str(data), "--out", str(tmp_path / "r"), "--set", "train.loss=x"])
    assert isinstance(res.exception, ConfigError)


def test_bad_config_combinations(data: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="n_negatives"):  # config.validate, before any training
        resolve(None, ["train.loss=bpr", "train.n_negatives=0"])
    with pytest.raises(ConfigError, match="use_item_features"):
        resolve(None, ["model.use_item_features=false", "model.use_item_id=false"])
    unchecked = RunConfig(model=ModelConfig(use_item_features=False, use_item_id=False))
    with pytest.raises(ConfigError, match="use_item_features"):  # train_run validates a hand-built config too
        T.train_run(data, tmp_path, unchecked, progress=False)
    inter, items = clusters()
    write_dataset(tmp_path / "geo_only", inter, items[["item_id", "lat", "lon"]], DatasetSpec())
    no_input = resolve(None, ['features.geo_encoding="none"', "model.use_item_id=false"])
    with pytest.raises(ConfigError, match="no feature columns"):
        T.train_run(tmp_path / "geo_only", tmp_path / "r", no_input, progress=False)


def test_original_content_two_tower_config(data: Path, tmp_path: Path) -> None:
    cfg = resolve(None, [*PRESETS["original_content"], "train.epochs=1", "model.hidden_dim=16",
                         "train.val_fraction=0.3"])
    T.train_run(data, tmp_path, cfg, progress=False)
    b = load_bundle(tmp_path)
    assert not any("_id." in k for k in artifacts.load_arrays(tmp_path / "model.safetensors"))
    assert b.model.spec.user_dense_dim == 0 and len(b.model.spec.cell_vocab_sizes) == 0
    assert b.model.user_in_dim == b.model.item_in_dim == 3  # stars + 2 category labels, pooled for users


def test_no_train_positives(tmp_path: Path) -> None:
    inter = pd.DataFrame({"user_id": ["a", "a", "b"], "item_id": ["x", "y", "x"], "rating": [1.0, 5.0, 1.0],
                          "timestamp": [1, 9, 2]})  # the only positive is after the temporal cut
    items = pd.DataFrame({"item_id": ["x", "y"]})
    write_dataset(tmp_path / "d", inter, items, DatasetSpec())
    with pytest.raises(DataError, match="no positive interactions in the train split"):
        T.train_run(tmp_path / "d", tmp_path / "r", resolve(None, ["eval.test_fraction=0.34"]), progress=False)


def test_nan_feature_error_or_impute(data: Path, tmp_path: Path) -> None:
    inter, items = clusters()
    items.loc[3, "stars"] = np.nan
    write_dataset(tmp_path / "d", inter, items, SPEC)
    with pytest.raises(DataError, match="stars"):
        T.train_run(tmp_path / "d", tmp_path / "r", resolve(None, FAST), progress=False)
    cfg = resolve(None, [*FAST, "train.epochs=1", 'data.nan_policy="impute"'])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        T.train_run(tmp_path / "d", tmp_path / "r", cfg, progress=False)
    assert any(issubclass(w.category, GeotowerWarning) and "stars" in str(w.message) for w in caught)


def fashion_data(tmp: Path) -> Path:
    """60 days in 4 fashions of 15 days: half the ratings of a period go to its item in fashion (a temporal split)."""
    rng = np.random.default_rng(2)
    j = np.arange(200)
    items = pd.DataFrame({"item_id": [f"i{k:03d}" for k in j], "lat": 60.17 + (j % 20) * 0.001,
                          "lon": 24.94 + (j // 20) * 0.001, "stars": (j % 5).astype(float),
                          "cats": np.where(j % 2 == 0, "cafe, bar", "bar")})
    n = 3000
    day = np.sort(rng.integers(0, 60, n))
    fashion = rng.permutation(200)[:4]
    item = np.where(rng.random(n) < 0.5, fashion[day // 15], rng.integers(0, 200, n))
    rows = pd.DataFrame({"user_id": [f"u{u:03d}" for u in rng.integers(0, 400, n)],
                         "item_id": [f"i{k:03d}" for k in item], "rating": 5.0,
                         "timestamp": 1_600_000_000 + day * 86_400 + rng.integers(0, 86_400, n)})
    return write_dataset(tmp, rows, items, SPEC)


def test_trend_prior_end_to_end(tmp_path: Path) -> None:
    data = fashion_data(tmp_path / "data")
    overrides = [*FAST, "model.trend_half_lives_days=[0.5, 8.0]", "train.epochs=2", "train.calibrate_trend=true",
                 "model.members=1"]
    result = T.train_run(data, tmp_path / "run", resolve(None, overrides), progress=False)
    m = artifacts.read_json(tmp_path / "run" / "manifest.json")
    assert m["split"]["method"] == "temporal"
    assert m["trend"]["calibrated"] and m["trend"]["weights"][0] > 0.5  # the short half-life carries the fashion
    b = load_bundle(tmp_path / "run")
    assert b.item_emb.shape[1] == b.user_emb.shape[1] == 8 + 1  # the prior column
    assert b.embed_liked(["i000", "i001"]).shape == (9,)
    assert b.embed_new_items(b.items.head(2).assign(stars=1.0, cats="bar")).shape == (2, 9)
    # the test rows (the last 20 % of days) favour recently fashionable items: the prior must beat no prior
    T.train_run(data, tmp_path / "off", resolve(None, [*overrides, "model.trend_half_lives_days=[]"]),
                progress=False)
    assert result.val_metrics["ndcg"] > 0
    from geotower.pipeline.evaluate import evaluate_run
    on_test = evaluate_run(tmp_path / "run").rows[0].metrics["ndcg"]
    off_test = evaluate_run(tmp_path / "off").rows[0].metrics["ndcg"]
    assert on_test > off_test + 0.05


def test_ensemble_members_average_in_one_dot_product(data: Path, tmp_path: Path) -> None:
    import torch

    from geotower.model.ensemble import TowerEnsemble

    result = T.train_run(data, tmp_path / "run", resolve(None, [*FAST, "model.members=2"]), progress=False)
    b = load_bundle(tmp_path / "run")
    assert isinstance(b.model, TowerEnsemble) and len(b.model.members) == 2
    assert artifacts.read_json(tmp_path / "run" / "manifest.json")["members"] == 2
    assert b.item_emb.shape[1] == b.user_emb.shape[1] == 2 * 8
    m0, m1 = b.model.members
    with torch.no_grad():
        v0, v1 = m0.all_item_embeddings().numpy(), m1.all_item_embeddings().numpy()
    assert not np.allclose(v0, v1)  # different seeds, different members
    np.testing.assert_allclose(b.item_emb, np.hstack([v0, v1]), atol=1e-6)
    # a user's scores are the mean of the two members' scores
    u0, u1 = b.user_emb[:, :8] * 2, b.user_emb[:, 8:] * 2
    np.testing.assert_allclose(b.user_emb @ b.item_emb.T, (u0 @ v0.T + u1 @ v1.T) / 2, rtol=1e-5, atol=1e-5)
    liked = b.embed_liked(["i00", "i01"])
    assert liked.shape == (16,)
    new = b.embed_new_items(b.items.head(3).assign(stars=1.0, cats="bar"))
    assert new.shape == (3, 16)
    assert result.val_metrics["ndcg"] > 0
    again = T.train_run(data, tmp_path / "again", resolve(None, [*FAST, "model.members=2"]), progress=False)
    assert again.val_metrics == result.val_metrics
    np.testing.assert_array_equal(load_bundle(tmp_path / "again").item_emb, b.item_emb)  # deterministic


def test_one_member_with_refit_writes_the_refit_model(tmp_path: Path) -> None:
    """model.members=1: the run's towers are the refit on all training rows, not the early-stopped model (the
    early-stopping phase is the same in both runs, so the item embeddings must differ when the refit is used)."""
    data = fashion_data(tmp_path / "data")
    sets = [*FAST, "train.epochs=2", "model.members=1"]
    T.train_run(data, tmp_path / "refit", resolve(None, sets), progress=False)
    T.train_run(data, tmp_path / "early", resolve(None, [*sets, "train.refit=false"]), progress=False)
    refit, early = load_bundle(tmp_path / "refit"), load_bundle(tmp_path / "early")
    assert refit.item_emb.shape == early.item_emb.shape
    assert not np.allclose(refit.item_emb, early.item_emb)
