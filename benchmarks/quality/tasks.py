"""Dataset folders and validation tasks for the quality benchmark (ML-100K, Foursquare Singapore, real Yelp).

The files in ``../shared/data`` are the TRAINING parts of each benchmark; the real test lies elsewhere. So we carve a
validation part out of them with the project's own split functions — the same ones ``train_run`` uses for its
held-out part (``protocol.split``) — so a geotower run given the whole training file with ``eval.test_fraction=0.2``
holds out exactly the rows we score here:

- ML-100K: global temporal cut, the latest 20 % of ``ratings.csv`` (the hidden test is the later 20 % of all data);
- Singapore: a per-user random 20 % of the (user, venue) pairs (the hidden test is held-out pairs per user);
- real Yelp (``prepare yelp`` on ``yelp-real``: restaurants/food, positive = stars >= 3): global temporal cut, the
  latest 20 % of the reviews (the hidden test is the later 20 % by date).

A :class:`Task` holds integer-indexed sparse matrices so that every model (peers and geotower) is scored by one
``geotower.evaluate.metrics.evaluate_scorer`` call over the same users, the same ground truth and the same mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from geotower import artifacts
from geotower import schema as S
from geotower.ingest.dataset import Dataset, load_dataset
from geotower.ingest.protocol import pair_csr
from geotower.ingest.split import holdout_split

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
EXAMPLES = REPO / "examples"
VAL_FRACTION = 0.2
SEED = 0


def build_ml100k(out: Path, src: Path = SHARED / "ml-100k") -> Path:
    """Dataset folder for MovieLens-100K: the raw files under the contract's names plus the example spec."""
    out.mkdir(parents=True, exist_ok=True)
    artifacts.write_bytes(out / "interactions.csv", (src / "ratings.csv").read_bytes())
    artifacts.write_bytes(out / "items.csv", (src / "items.csv").read_bytes())
    artifacts.write_bytes(out / "users.csv", (src / "users.csv").read_bytes())
    artifacts.write_bytes(out / S.DATASET_TOML, (EXAMPLES / "ml-100k" / S.DATASET_TOML).read_bytes())
    return out


def build_foursquare(out: Path, src: Path = SHARED / "foursquare-sg") -> Path:
    """Dataset folder for Foursquare Singapore: ``poi_id`` renamed to the contract's ``item_id``."""
    out.mkdir(parents=True, exist_ok=True)
    checkins = pd.read_csv(src / "checkins.csv", dtype={"user_id": str, "poi_id": str})
    pois = pd.read_csv(src / "pois.csv", dtype={"poi_id": str})
    artifacts.write_table(out / "interactions.csv", checkins.rename(columns={"poi_id": S.ITEM_ID}))
    artifacts.write_table(out / "items.csv", pois.rename(columns={"poi_id": S.ITEM_ID}))
    artifacts.write_bytes(out / S.DATASET_TOML, (EXAMPLES / "foursquare-sg" / S.DATASET_TOML).read_bytes())
    return out


def build_yelp(out: Path, src: Path = SHARED / "yelp-real") -> Path:
    """Dataset folder for the real Yelp reviews through the product's own ``prepare yelp`` (read in place)."""
    from geotower.ingest.yelp import prepare_yelp

    if not (out / S.DATASET_TOML).exists():
        prepare_yelp(src / "business.json", src / "review.json", out, threads=1)
    return out


BUILDERS = {"ml100k": build_ml100k, "foursquare": build_foursquare, "yelp": build_yelp}


@dataclass
class Task:
    """One validation problem in integer indices (users in first-seen order, items in items-table order).

    Attributes:
        train_pos: (n_users, n_items) CSR of train positives, data = summed confidence weight.
        seen: (n_users, n_items) CSR of train-seen pairs (any rating): masked at ranking time.
        relevant: (n_users, n_items) CSR of validation positives.
        users: (n,) indices of warm users (>= 1 train positive), the ones evaluated.
        events: (item index, timestamp seconds) of the train positives, or None without timestamps (for the
            time-decayed popularity peer).
    """

    name: str
    data_dir: Path
    dataset: Dataset
    user_ids: np.ndarray
    item_ids: np.ndarray
    train_pos: sp.csr_matrix
    seen: sp.csr_matrix
    relevant: sp.csr_matrix
    users: np.ndarray
    events: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def n_items(self) -> int:
        return len(self.item_ids)


def load_task(name: str, data_dir: Path) -> Task:
    """Read the dataset folder, carve validation with ``holdout_split`` and build the sparse matrices."""
    ds = load_dataset(data_dir)
    inter = ds.interactions
    split = holdout_split(inter, VAL_FRACTION, SEED)
    item_ids = ds.items[S.ITEM_ID].to_numpy()
    u_codes, user_ids = pd.factorize(inter[S.USER_ID])
    i_codes = pd.Index(item_ids).get_indexer(inter[S.ITEM_ID])
    pos = inter[S.POSITIVE].to_numpy()
    w = inter[S.WEIGHT].to_numpy(dtype=np.float32)
    shape = (len(user_ids), len(item_ids))
    tr, va = split.train, split.test
    tr_pos = tr[pos[tr]]
    train_pos = pair_csr(u_codes[tr_pos], i_codes[tr_pos], shape, w[tr_pos])
    seen = pair_csr(u_codes[tr], i_codes[tr], shape, np.ones(len(tr)))  # counts, as before
    va_pos = va[pos[va]]
    relevant = pair_csr(u_codes[va_pos], i_codes[va_pos], shape, np.ones(len(va_pos)))
    warm = np.flatnonzero(np.diff(train_pos.indptr) > 0)
    events = None
    if S.TIMESTAMP in inter.columns:
        events = (i_codes[tr_pos].astype(np.int64), inter[S.TIMESTAMP].to_numpy(dtype=np.float64)[tr_pos])
    return Task(name, data_dir, ds, np.asarray(user_ids, dtype=str), item_ids.astype(str), train_pos=train_pos,
                seen=seen, relevant=relevant, users=warm, events=events)
