"""A run is loaded only as written: complete.json lists every file's sha256, arrays are finite, indices in range
(issue #13 cases 3, 4, 7, 9, 10 and the manifest-path case). Each test damages a copy of the session's tiny run."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from geotower import artifacts
from geotower.config import resolve
from geotower.errors import ArtifactError, ConfigError, GeotowerError
from geotower.model.bundle import ITEM_EMB, TRAIN_SEEN, load_bundle
from geotower.pipeline.train import train_run

RUN_ARRAYS = ["model.safetensors", "item_embeddings.safetensors", "user_embeddings.safetensors",
              "features.safetensors", "train_seen.safetensors", "popularity.safetensors"]


@pytest.fixture
def run(tiny_run: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(tiny_run, out)
    return out


def _flip_data_byte(path: Path, from_end: int = 1) -> None:
    """Flip one byte of the tensor data (the end of a safetensors file), keeping the header valid."""
    raw = bytearray(path.read_bytes())
    raw[-from_end] ^= 0x40
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("name", RUN_ARRAYS)
def test_flipped_byte_in_any_run_array_is_refused(run: Path, name: str) -> None:
    _flip_data_byte(run / name)
    with pytest.raises(ArtifactError, match=rf"{name} is corrupt .*retrain"):
        load_bundle(run)


def test_truncated_or_missing_file_is_refused(run: Path) -> None:
    (run / ITEM_EMB).write_bytes((run / ITEM_EMB).read_bytes()[:-8])
    with pytest.raises(ArtifactError, match="changed size"):
        load_bundle(run)
    (run / ITEM_EMB).unlink()
    with pytest.raises(ArtifactError, match="incomplete or mixed"):
        load_bundle(run)


def test_run_without_marker_is_refused_with_recovery_hint(run: Path) -> None:
    (run / artifacts.COMPLETE).unlink()
    with pytest.raises(ArtifactError, match="complete.json is missing.*geotower train"):
        load_bundle(run)


def test_out_of_range_train_seen_indices_refused_even_when_resealed(run: Path) -> None:
    """Case 3: a train_seen index past the catalog gave IndexError in recommend / 500 in serve."""
    arrays = artifacts.load_arrays(run / TRAIN_SEEN)
    arrays["indices"] = arrays["indices"].copy()
    arrays["indices"][0] = 10**6
    artifacts.save_arrays(run / TRAIN_SEEN, arrays)
    artifacts.write_marker(run, "run", 99)
    with pytest.raises(ArtifactError, match="train_seen.safetensors is corrupt"):
        load_bundle(run)


def test_non_finite_embeddings_refused_even_when_resealed(run: Path) -> None:
    from safetensors.numpy import save_file

    emb = artifacts.load_arrays(run / ITEM_EMB)["embeddings"].copy()
    emb[0, 0] = np.nan
    save_file({"embeddings": emb}, str(run / ITEM_EMB))  # bypasses save_arrays, which refuses NaN
    artifacts.write_marker(run, "run", 99)
    with pytest.raises(ArtifactError, match="NaN/infinite"):
        load_bundle(run)


def test_save_arrays_never_writes_non_finite(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="NaN/infinite"):
        artifacts.save_arrays(tmp_path / "x.safetensors", {"w": np.array([1.0, np.inf], dtype=np.float32)})
    assert not (tmp_path / "x.safetensors").exists()


def test_mixed_run_after_partial_overwrite_is_refused(run: Path, tiny_run: Path) -> None:
    """Case 4: new weights beside old embeddings (what a killed non-atomic retrain left) must not load."""
    arrays = artifacts.load_arrays(run / "model.safetensors")
    artifacts.save_arrays(run / "model.safetensors", {k: v * 1.5 if v.dtype.kind == "f" else v
                                                      for k, v in arrays.items()})
    with pytest.raises(ArtifactError, match="model.safetensors is corrupt"):
        load_bundle(run)


def test_manifest_cannot_point_hashing_at_any_file(run: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("x")
    manifest = artifacts.read_json(run / "manifest.json")
    manifest["dataset_dir"] = str(tmp_path)
    manifest["data"]["files"]["items"]["name"] = "secret.txt"
    artifacts.write_json(run / "manifest.json", manifest)
    artifacts.write_marker(run, "run", 99)  # even a re-sealed edit
    with pytest.raises(ArtifactError, match="outside the dataset contract"):
        load_bundle(run)


def test_train_into_its_own_dataset_folder_is_refused(cluster_data: Path, tiny_cfg) -> None:
    """Case 7: ``train DATA --out DATA`` replaced the dataset's items.parquet with the run's."""
    before = {p.name: p.read_bytes() for p in cluster_data.iterdir() if p.is_file()}
    with pytest.raises(ConfigError, match="overlaps the input"):
        train_run(cluster_data, cluster_data, tiny_cfg, progress=False)
    with pytest.raises(ConfigError, match="overlaps the input"):
        train_run(cluster_data, cluster_data.parent, tiny_cfg, progress=False)
    assert {p.name: p.read_bytes() for p in cluster_data.iterdir() if p.is_file()} == before


def test_output_path_that_is_a_file_is_refused(cluster_data: Path, tiny_cfg, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="is an existing file"):
        train_run(cluster_data, tmp_path / "f", tiny_cfg, progress=False)


@pytest.mark.parametrize("lr", ["inf", "nan", "-inf"])
def test_non_finite_learning_rate_is_a_config_error(lr: str) -> None:
    """Case 9: ``train.lr=nan`` gave a traceback, ``inf`` a NaN model."""
    with pytest.raises(ConfigError, match="train.lr"):
        resolve(None, [f"train.lr={lr}"])


def test_diverging_training_stops_and_saves_nothing(cluster_data: Path, tiny_cfg, tmp_path: Path) -> None:
    """Case 9: a finite but huge lr diverges; training stops with a clear error and no run appears."""
    cfg = resolve(None, ["model.embed_dim=8", "model.hidden_dim=16", "model.members=1", "train.epochs=2",
                         "train.lr=1e30", "train.patience=0"])
    with pytest.raises(GeotowerError, match="diverged|NaN"):
        train_run(cluster_data, tmp_path / "r", cfg, progress=False)
    assert not (tmp_path / "r").exists()
    checkpoints = tmp_path / ".r.partial" / "checkpoints"
    for f in checkpoints.glob("*.safetensors") if checkpoints.exists() else []:
        for name, values in artifacts.load_arrays(f).items():
            assert np.isfinite(values).all() if values.dtype.kind == "f" else True, (f, name)


def test_new_items_with_text_in_a_numeric_feature_name_row_and_column(tiny_run: Path, cluster_data: Path,
                                                                       tmp_path: Path) -> None:
    """``index --add`` with a non-numeric feature column gave a traceback."""
    import pandas as pd

    from geotower.errors import DataError
    from geotower.pipeline.recommend import add_items

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    items = pd.read_parquet(cluster_data / "items.parquet").iloc[[20, 20]].assign(item_id=["n1", "n2"])
    items["stars"] = items["stars"].astype(object)
    items.iloc[1, items.columns.get_loc("stars")] = "five"
    items.to_csv(tmp_path / "new.csv", index=False)
    before = _snapshot(run)
    with pytest.raises(DataError, match=r"new.csv, row 1, column 'stars'"):
        add_items(run, tmp_path / "new.csv")
    assert _snapshot(run) == before


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
