"""kill -9 at several points of prepare, features --merge, train and index --add leaves the old complete output or
the new complete output, never a mix (issue #13 cases 4, 5, 8 and "Done when").

Each command runs as a real ``geotower`` process; a watcher polls the staging folder and sends SIGKILL when it
reaches a chosen point (the folder exists, a given file appeared in it). A point the command passes too quickly to
catch lets it finish: then the new complete output must be there. Either way the folder must verify against its
``complete.json`` and hold exactly one generation's files.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from geotower import artifacts
from geotower.artifacts import folders
from geotower.config import PRESETS
from geotower.ingest.dataset import DatasetSpec, TableSpec, load_dataset, write_dataset
from geotower.model.bundle import load_bundle

REPO = Path(__file__).resolve().parents[2]
FAST = [*PRESETS["early_stopping"],
        "model.embed_dim=8", "model.hidden_dim=16", "model.n_layers=1", "model.cell_dim=4", "model.members=1",
        "train.batch_size=16", "train.lr=0.01", "train.patience=0", "train.val_fraction=0.3", "train.threads=1",
        "features.grid_cells_m=[500.0, 2000.0]"]
CLI = [sys.executable, "-c", "import sys; from geotower.cli import app; sys.argv[0] = 'geotower'; app()"]


def _sets(overrides: list[str]) -> list[str]:
    return [a for s in overrides for a in ("--set", s)]


def _kill_when(args: list[str], point: Callable[[], bool], limit_s: float = 120.0) -> bool:
    """Run the CLI; SIGKILL it as soon as ``point()`` holds. True when killed, False when it finished first."""
    proc = subprocess.Popen([*CLI, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True, env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    deadline = time.monotonic() + limit_s
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if point():
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return True
            time.sleep(0.002)
        assert proc.wait(timeout=5) == 0, proc.stderr.read().decode() if proc.stderr else ""
        return False
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


def _snapshot(folder: Path) -> dict[str, str]:
    return {rel: artifacts.file_sha256(p) for rel, p in folders._listing(folder)}


def _assert_old_or_new(folder: Path, kind: str, old: dict[str, str], old_gen: int) -> str:
    """The folder verifies, and is either exactly the old generation or the next one. Returns which."""
    marker = artifacts.verify_folder(folder, kind)
    assert marker["generation"] in (old_gen, old_gen + 1)
    if marker["generation"] == old_gen:
        assert _snapshot(folder) == old
        return "old"
    assert set(marker["files"]) == set(_snapshot(folder))
    return "new"


def _stage_has(final: Path, name: str = "") -> Callable[[], bool]:
    stage = artifacts.staging_path(final)
    return lambda: (stage / name).exists() if name else stage.exists()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(3)
    j = np.arange(30)
    items = pd.DataFrame({"item_id": [f"{k:03d}" for k in j], "name": [f"p{k}" for k in j],
                          "lat": 60.17 + (j % 10) * 5e-4, "lon": np.where(j < 15, 24.94, 25.04),
                          "stars": (j % 5).astype(float), "cats": np.where(j < 15, "cafe, bar", "bar")})
    rows = [(f"u{u:02d}", f"{k:03d}", 5.0, 1000 * u + t) for u in range(40)
            for t, k in enumerate(rng.choice(15, 8, replace=False) + (0 if u % 2 else 15))]
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    return write_dataset(tmp_path_factory.mktemp("kill") / "data", inter, items,
                         DatasetSpec(items=TableSpec(multi_label={"cats": ", "})))


@pytest.fixture(scope="module")
def trained(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from geotower.config import resolve
    from geotower.pipeline.train import train_run

    run = tmp_path_factory.mktemp("trained") / "run"
    train_run(data, run, resolve(None, [*FAST, "train.epochs=1"]), progress=False)
    return run


def _copy_run(trained: Path, tmp_path: Path) -> Path:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained, run)
    return run


def test_kill_during_retrain_keeps_the_old_run_or_the_new_one(data: Path, trained: Path, tmp_path: Path) -> None:
    from geotower.config import resolve
    from geotower.pipeline.train import train_run

    run = _copy_run(trained, tmp_path)
    old, outcomes, old_dim = _snapshot(run), [], load_bundle(run).item_emb.shape[1]
    new_cfg = [*FAST, "train.epochs=4", "model.embed_dim=12"]
    retrain = ["train", str(data), "--out", str(run), "--quiet", *_sets(new_cfg)]
    for point in ("", "checkpoints/epoch_0002.json", "model.safetensors"):
        killed = _kill_when(retrain, _stage_has(run, point))
        outcome = _assert_old_or_new(run, "run", old, 1)
        outcomes.append((point, killed, outcome))
        if outcome == "new":
            break
        assert load_bundle(run).item_emb.shape[1] == old_dim  # the old run is whole and loads
    assert any(killed and o == "old" for _, killed, o in outcomes), outcomes
    # a killed train keeps its checkpoints: --resume finishes the new run
    train_run(data, run, resolve(None, new_cfg), resume=True, progress=False)
    assert _assert_old_or_new(run, "run", old, 1) == "new"
    assert load_bundle(run).item_emb.shape[1] == old_dim + 4
    assert json.loads((run / "config.json").read_text())["model"]["embed_dim"] == 12


def test_kill_during_index_add_keeps_the_run_usable(data: Path, trained: Path, tmp_path: Path) -> None:
    """Case 8: a killed ``index --add`` left the run stuck ("re-add them" failed every time)."""
    from geotower.pipeline.recommend import add_items

    run = _copy_run(trained, tmp_path)
    items = pd.read_parquet(data / "items.parquet").iloc[:3].assign(item_id=["n1", "n2", "n3"])
    items.to_csv(tmp_path / "new.csv", index=False)
    old, gen = _snapshot(run), artifacts.verify_folder(run, "run")["generation"]
    outcome = "old"
    for point in ("", "added_items.safetensors"):
        _kill_when(["index", str(run), "--add", str(tmp_path / "new.csv")], _stage_has(run, point))
        outcome = _assert_old_or_new(run, "run", old, gen)
        if outcome == "new":
            break
        load_bundle(run)
    if outcome == "old":
        add_items(run, tmp_path / "new.csv")  # re-adding works
    assert "n1" in set(pd.read_parquet(run / "added_items.parquet")["item_id"])
    artifacts.verify_folder(run, "run", optional=artifacts.RunLayout.OPTIONAL)


def _review_files(folder: Path, n_reviews: int) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    biz = [{"business_id": f"b{k:03d}", "name": f"p{k}", "latitude": 60.17 + k * 1e-4, "longitude": 24.94,
            "stars": 4.0, "categories": "Restaurants, Cafes", "city": "Helsinki", "state": "FI"} for k in range(50)]
    (folder / "business.json").write_text("".join(json.dumps(b) + "\n" for b in biz))
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 2000, n_reviews), rng.integers(0, 50, n_reviews)
    lines = [f'{{"review_id": "r{i}", "user_id": "u{u}", "business_id": "b{b:03d}", "stars": 4, '
             f'"date": "2020-01-0{1 + i % 9} 10:00:00", "text": "good food {i}"}}\n'
             for i, (u, b) in enumerate(zip(users, items, strict=True))]
    (folder / "review.json").write_text("".join(lines))
    return folder / "business.json", folder / "review.json"


def test_kill_during_prepare_keeps_the_old_dataset(tmp_path: Path) -> None:
    """Case 5: a killed re-prepare left new items beside old interactions, and .prepare-* spill folders."""
    biz, rev = _review_files(tmp_path / "raw", 3000)
    from geotower.ingest.yelp import prepare_yelp

    out = tmp_path / "ds"
    prepare_yelp(biz, rev, out)
    old = _snapshot(out)
    n_old = len(load_dataset(out).interactions)
    _review_files(tmp_path / "raw", 60_000)
    args = ["prepare", "yelp", "--business", str(biz), "--reviews", str(rev), "--out", str(out)]
    outcomes = []
    for point in ("", ".spill", "items.parquet"):
        killed = _kill_when(args, _stage_has(out, point))
        outcome = _assert_old_or_new(out, "dataset", old, 1)
        outcomes.append((point, killed, outcome))
        if outcome == "new":
            break
        assert len(load_dataset(out).interactions) == n_old
    assert any(killed for _, killed, _ in outcomes), outcomes
    prepare_yelp(biz, rev, out)  # the next prepare cleans the dead staging folder and finishes
    assert _assert_old_or_new(out, "dataset", old, 1) == "new"
    assert len(load_dataset(out).interactions) == 60_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "raw"]  # no staging or spill folder left


def test_kill_during_features_merge_keeps_the_old_items(tmp_path: Path) -> None:
    """Cases 5/6 for ``features osm --merge``: atomic, and ids such as 007 stay 007 in a CSV dataset."""
    fixtures = REPO / "tests" / "fixtures" / "osm"
    items = pd.read_csv(fixtures / "items.csv").assign(item_id=lambda d: [f"{k:03d}" for k in range(len(d))])
    ds = tmp_path / "ds"
    ds.mkdir()
    items.to_csv(ds / "items.csv", index=False)
    pd.DataFrame({"user_id": ["u1"] * len(items), "item_id": items["item_id"]}).to_csv(ds / "interactions.csv",
                                                                                      index=False)
    merge = ["features", "osm", "--items", str(ds), "--osm", str(fixtures / "tiny.osm.pbf"), "--merge"]
    assert not _kill_when([*merge, "--set", "features.layers=['water']"], lambda: False)
    old = _snapshot(ds)
    assert pd.read_csv(ds / "items.csv", dtype=str)["item_id"].tolist()[:2] == ["000", "001"]
    for point in ("", "items.csv"):
        _kill_when([*merge, "--set", "features.layers=['roads']"], _stage_has(ds, point))
        if _assert_old_or_new(ds, "dataset", old, 1) == "new":
            break
    ds_items = load_dataset(ds).items
    assert ds_items["item_id"].tolist()[:2] == ["000", "001"]
