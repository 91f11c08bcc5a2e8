"""Data-parallel training on torch.distributed (gloo, 2 CPU processes) equals one process; resume after a rank dies.

Tolerance: embeddings within 1e-5 absolute (observed ~5e-7: float sums in another order) and validation metrics
equal to 1e-6; the ranks see the same seeded global batches, so nothing but summation order may differ.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
import torch

from geotower import artifacts
from geotower.config import PRESETS, resolve
from geotower.errors import ConfigError
from geotower.ingest.dataset import DatasetSpec, TableSpec, write_dataset
from geotower.model.bundle import load_bundle
from geotower.pipeline.train import train_run
from geotower.train.distributed import resolve_device, without_option

SETS = [*PRESETS["early_stopping"],
        "model.embed_dim=8", "model.hidden_dim=16", "model.n_layers=1", "model.cell_dim=4", "train.epochs=5",
        "train.batch_size=32", "train.lr=0.03", "train.patience=0", "train.val_fraction=0.3",
        "features.grid_cells_m=[500.0, 2000.0]"]
SRC = Path(__file__).resolve().parents[2] / "src"


def _clusters() -> tuple[pd.DataFrame, pd.DataFrame]:
    """20 places in two clusters, 25 users who like one of them (an odd row count: shards of unequal size)."""
    rng = np.random.default_rng(1)
    j = np.arange(20)
    items = pd.DataFrame({"item_id": [f"i{k:02d}" for k in j], "lat": 60.170 + (j % 10) * 0.0005,
                          "lon": np.where(j < 10, 24.940, 25.040), "cats": np.where(j < 10, "cafe, bar", "bar")})
    rows = []
    for u in range(25):
        own = rng.choice(10, size=7, replace=False) + (0 if u % 2 == 0 else 10)
        rows += [(f"u{u:02d}", f"i{k:02d}", 5.0) for k in own]
        rows.append((f"u{u:02d}", f"i{(own[0] + 10) % 20:02d}", 1.0))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating"]), items


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    inter, items = _clusters()
    return write_dataset(tmp_path_factory.mktemp("data"), inter, items,
                         DatasetSpec(items=TableSpec(multi_label={"cats": ", "})))


@pytest.fixture(scope="module")
def single(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("single") / "run"
    train_run(data, out, resolve(None, SETS), progress=False)
    return out


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}


def _geotower(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from geotower.cli import app; sys.argv[0] = 'geotower'; app()", *args]


def _train_args(data: Path, out: Path) -> list[str]:
    return ["train", str(data), "--out", str(out), "--quiet", *[a for s in SETS for a in ("--set", s)]]


def _assert_same_run(got: Path, want: Path) -> None:
    a, b = load_bundle(got), load_bundle(want)
    np.testing.assert_allclose(a.item_emb, b.item_emb, atol=1e-5)
    np.testing.assert_allclose(a.user_emb, b.user_emb, atol=1e-5)
    ma, mb = (artifacts.read_json(p / artifacts.MANIFEST) for p in (got, want))
    assert ma["best_epoch"] == mb["best_epoch"] and ma["epochs_run"] == mb["epochs_run"]
    for key, value in mb["val_metrics"].items():
        assert ma["val_metrics"][key] == pytest.approx(value, abs=1e-6)


def test_two_processes_equal_one(data: Path, single: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.run(_geotower(*_train_args(data, out), "--nproc", "2"), env=_env(), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("run written to") == 1  # rank 0 alone reports and writes
    _assert_same_run(out, single)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_multi_node_command_and_resume_after_a_rank_is_killed(data: Path, single: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
                "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{_free_port()}", "--no-python"]
    proc = subprocess.Popen([*torchrun, *_geotower(*_train_args(data, out))], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    stage = artifacts.staging_path(out)
    deadline = time.monotonic() + 300
    while not list((stage / "checkpoints").glob("epoch_0002.json")) and proc.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    ranks = [p for p in psutil.Process(proc.pid).children(recursive=True) if p.environ().get("RANK") == "1"]
    assert proc.poll() is None and ranks, "the run finished before a rank could be killed; make it longer"
    ranks[0].kill()
    proc.communicate(timeout=120)
    assert proc.returncode != 0  # torchrun stops the job when a rank dies
    assert not (out / "complete.json").exists()
    resumed = subprocess.run(_geotower(*_train_args(data, out), "--nproc", "2", "--resume"), env=_env(),
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _assert_same_run(out, single)


def test_device_auto_runs_without_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(ConfigError, match="expected"):
        resolve_device("tpu")


def test_device_auto_trains(data: Path, tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: auto would pick cuda")
    result = train_run(data, tmp_path / "run", resolve(None, [*SETS, "train.device='auto'", "train.epochs=1"]),
                       progress=False)
    assert result.epochs_run == 1


def test_without_option() -> None:
    assert without_option(["train", "d", "--nproc", "2", "--quiet", "--nproc=3"], "--nproc") == ["train", "d",
                                                                                                 "--quiet"]
