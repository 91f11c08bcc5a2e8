"""Same seed, same bytes with the default thread count (issue #13 case 12): multi-threaded CPU training used to
be byte-identical only with ``train.threads=1``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from geotower import artifacts
from geotower.config import resolve
from geotower.ingest.dataset import DatasetSpec, write_dataset
from geotower.pipeline.train import train_run

FILES = ("model.safetensors", "item_embeddings.safetensors", "user_embeddings.safetensors")


def test_default_threads_train_byte_identical_twice(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n_items, n_users = 200, 200
    items = pd.DataFrame({"item_id": [f"i{k}" for k in range(n_items)], "lat": 60.1 + rng.random(n_items) * 0.05,
                          "lon": 24.9 + rng.random(n_items) * 0.1, "stars": rng.integers(1, 6, n_items) * 1.0})
    rows = [(f"u{u}", f"i{k}", float(rng.integers(1, 6)), int(1e9 + u * 100 + t)) for u in range(n_users)
            for t, k in enumerate(rng.choice(n_items, 15, replace=False))]
    data = write_dataset(tmp_path / "data", pd.DataFrame(rows, columns=["user_id", "item_id", "rating",
                                                                        "timestamp"]), items, DatasetSpec())
    cfg = resolve(None, ["train.epochs=1", "model.members=1", "train.batch_size=512", "model.embed_dim=32",
                         "model.hidden_dim=64", "train.threads=2"])
    assert cfg.train.threads == 2  # several threads (the default is 1 since the fast defaults, docs/quality.md)
    hashes = []
    for rep in range(2):
        train_run(data, tmp_path / f"r{rep}", cfg, progress=False)
        hashes.append([artifacts.file_sha256(tmp_path / f"r{rep}" / f) for f in FILES])
    assert hashes[0] == hashes[1], f"not byte-identical with {torch.get_num_threads()} threads"
    assert not torch.are_deterministic_algorithms_enabled()  # the global switch is restored
