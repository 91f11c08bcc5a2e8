"""Training speed: geotower vs a faithful re-implementation of the original training loop, in one run.

Run from the repository root (everything is written under ``--work``, outside the repo)::

    python benchmarks/bench_train.py --work /tmp/bt --reviews 500000          # simulate + prepare + measure
    python benchmarks/bench_train.py --work /tmp/bt --data DATASET_DIR        # an existing dataset folder

Data: the real Philadelphia places and their 54 OSM context features with reviews from ``geotower simulate``,
turned into a dataset folder by ``geotower prepare yelp``; the feature matrix is merged into ``items``.
Each contender runs in its own subprocess (so peak RSS is its own) with the same thread count:

* ``original``: a torch ``Dataset`` whose ``__getitem__`` reads the review with pandas ``.loc``, the user vector from
  a dict of cached mean-feature vectors and the item features with ``.loc``, and draws the negative with a
  ``random.choice`` while-loop; ``DataLoader(batch_size=2048, shuffle=True)``; BPR; 54->512->128 MLP towers; Adam.
* ``same``: geotower's batches + loop + towers at the SAME model and loss (content-only towers, no IDs, no
  normalisation, 1 hidden layer of 512, 128 out, BPR with 1 negative, Adam lr 1e-3, batch 2048).
* ``default``: ``train_run`` with geotower's default config (time-to-quality).

Both ``original`` and ``default`` are scored on the same validation rows: ``geotower.ingest.protocol.split`` (held-out
test removed, validation carved from train), whose NDCG@10 ``train_run`` logs per epoch to TensorBoard.
Reported: samples/s (and the ratio), mean BPR loss of epoch 1, the original's NDCG@10 after its epochs, geotower's
wall time to reach it, the share of the measured matmul FLOP/s that training reaches, and peak RSS per contender.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from geotower import artifacts
from geotower import schema as S
from geotower.config import resolve
from geotower.evaluate.metrics import evaluate_scorer
from geotower.ingest.dataset import load_dataset
from geotower.ingest.protocol import SplitRows as Parts
from geotower.ingest.protocol import split as split_rows

REPO = Path(__file__).resolve().parents[1]
PHILLY = REPO.parent / "shared" / "data" / "philly"
BATCH, HIDDEN, EMBED, LR = 2048, 512, 128, 1e-3


# --- data -------------------------------------------------------------------------------------------------
def build_dataset(work: Path, n_reviews: int) -> Path:
    """Simulate reviews for the Philadelphia places, prepare a dataset folder, merge the OSM feature matrix."""
    from geotower.ingest.simulate import SimConfig, simulate
    from geotower.ingest.yelp import prepare_yelp

    sim, ds = work / "sim", work / "philly_ds"
    if not (ds / "items.parquet").exists():
        simulate(PHILLY / "restaurants.csv", sim, SimConfig(n_reviews=n_reviews), PHILLY / "geo_feature_matrix.csv")
        prepare_yelp(sim / "business.json", sim / "review.json", ds, threads=2)
    return merge_features(ds, PHILLY / "geo_feature_matrix.csv")


def merge_features(ds: Path, features: Path) -> Path:
    """Add the 54 ``<layer>_<r>m_<stat>`` columns to ``items`` (by business_id) unless already there."""
    items_path = next(p for p in (ds / "items.parquet", ds / "items.csv") if p.exists())
    items = artifacts.read_table(items_path, dtype={S.ITEM_ID: str})
    cols = S.geo_feature_columns()
    if all(c in items.columns for c in cols):
        return ds
    feats = pd.read_csv(features, dtype={"business_id": str}).rename(columns={"business_id": S.ITEM_ID})
    merged = items.drop(columns=[c for c in cols if c in items.columns]).merge(feats[[S.ITEM_ID, *cols]],
                                                                               on=S.ITEM_ID, how="left")
    merged[cols] = merged[cols].fillna(0.0)
    artifacts.write_table(items_path, merged)
    return ds


def feature_matrix(items: pd.DataFrame) -> np.ndarray:
    """(n_items, 54) float32: clip at 0, log1p, standardise (the original recipe)."""
    x = np.log1p(np.clip(items[S.geo_feature_columns()].to_numpy(np.float64), 0, None))
    return ((x - x.mean(0)) / np.where(x.std(0) > 0, x.std(0), 1.0)).astype(np.float32)


def split(data: Path, cfg_overrides: list[str]) -> tuple[Any, Parts]:
    ds = load_dataset(data)
    return ds, split_rows(ds, resolve(None, cfg_overrides))


# --- the original loop --------------------------------------------------------------------------------------
class OriginalReviews(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """The original per-sample dataset: pandas ``.loc`` lookups and a rejection-sampled random negative."""

    def __init__(self, reviews: pd.DataFrame, features: pd.DataFrame, user_vectors: dict[str, np.ndarray],
                 user_items: dict[str, set[str]]) -> None:
        self.reviews, self.features = reviews, features
        self.user_vectors, self.user_items = user_vectors, user_items
        self.all_items = list(features.index)

    def __len__(self) -> int:
        return len(self.reviews)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        user = self.reviews.loc[idx, S.USER_ID]
        item = self.reviews.loc[idx, S.ITEM_ID]
        neg = random.choice(self.all_items)
        while neg in self.user_items[user]:
            neg = random.choice(self.all_items)
        return (torch.tensor(self.user_vectors[user], dtype=torch.float32),
                torch.tensor(self.features.loc[item].values, dtype=torch.float32),
                torch.tensor(self.features.loc[neg].values, dtype=torch.float32))


def tower(d_in: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, EMBED))


def run_original(data: Path, epochs: int, overrides: list[str]) -> dict[str, Any]:
    """Train the original model; samples/s of epoch 1 and NDCG@10 on the pipeline's validation after each epoch."""
    ds, parts = split(data, overrides)
    x = feature_matrix(ds.items)
    item_ids = ds.items[S.ITEM_ID].astype(str).to_numpy()
    features = pd.DataFrame(x, index=item_ids)
    fit = parts.fit[parts.fit[S.POSITIVE]].reset_index(drop=True)[[S.USER_ID, S.ITEM_ID]]
    item_pos = pd.Index(item_ids).get_indexer(fit[S.ITEM_ID])
    means = pd.DataFrame(x[item_pos]).groupby(fit[S.USER_ID].to_numpy()).mean()  # cached user vectors
    user_vectors = {u: means.loc[u].to_numpy(np.float32) for u in means.index}
    user_items = fit.groupby(S.USER_ID)[S.ITEM_ID].agg(set).to_dict()
    loader = torch.utils.data.DataLoader(OriginalReviews(fit, features, user_vectors, user_items),
                                         batch_size=BATCH, shuffle=True)
    user_tower, item_tower = tower(x.shape[1]), tower(x.shape[1])
    opt = torch.optim.Adam([*user_tower.parameters(), *item_tower.parameters()], lr=LR)
    val = validation(parts, item_ids, pd.Index(means.index))
    curve, train_s = [], 0.0
    for epoch in range(1, epochs + 1):
        t0, losses = time.perf_counter(), []
        for u, p, n in loader:
            opt.zero_grad()
            eu = user_tower(u)
            loss = -nn.functional.logsigmoid((eu * item_tower(p)).sum(1) - (eu * item_tower(n)).sum(1)).mean()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        train_s += time.perf_counter() - t0
        with torch.no_grad():
            ue = user_tower(torch.from_numpy(means.to_numpy(np.float32))).numpy()
            ie = item_tower(torch.from_numpy(x)).numpy()
        ndcg = evaluate_scorer(lambda b, ue=ue, ie=ie: ue[b] @ ie.T, val[0], val[1], val[2], 10)["ndcg"]
        curve.append({"epoch": epoch, "train_s": train_s, "loss": float(np.mean(losses)), "ndcg": ndcg})
        print(json.dumps(curve[-1]), flush=True)
    first = curve[0]
    return {"samples": len(fit), "samples_per_s": len(fit) / first["train_s"], "epoch1_loss": first["loss"],
            "curve": curve, "final_ndcg": curve[-1]["ndcg"], "flops_per_sample": flops_same(x.shape[1])}


def validation(parts: Parts, item_ids: np.ndarray, users: pd.Index) -> tuple[np.ndarray, Any, Any]:
    """(users, relevant, seen) in the given user index, as the pipeline's validator builds them."""
    import scipy.sparse as sp

    def csr(rows: pd.DataFrame) -> sp.csr_matrix:
        u, i = users.get_indexer(rows[S.USER_ID]), pd.Index(item_ids).get_indexer(rows[S.ITEM_ID])
        ok = u >= 0
        return sp.csr_matrix((np.ones(ok.sum(), np.float32), (u[ok], i[ok])), shape=(len(users), len(item_ids)))

    relevant = csr(parts.validation[parts.validation[S.POSITIVE]])
    return np.flatnonzero(np.diff(relevant.indptr) > 0), relevant, csr(parts.fit)


def flops_same(d_in: int) -> float:
    """Training FLOPs per sample of the 54->512->128 towers: 3 tower passes, backward = 2x forward."""
    fwd = 3 * 2 * (d_in * HIDDEN + HIDDEN * EMBED) + 2 * 2 * EMBED
    return 3.0 * fwd


# --- geotower at the same model and loss ------------------------------------------------------------------------
def run_same(data: Path, overrides: list[str]) -> dict[str, Any]:
    """One epoch of geotower's BatchSampler + fit + TwoTower with the original's model and loss."""
    from geotower.model.spec import TowerSpec
    from geotower.model.towers import TwoTower
    from geotower.train.batches import BatchSampler, build_train_data
    from geotower.train.loop import fit, two_tower_loss

    ds, parts = split(data, overrides)
    x = feature_matrix(ds.items)
    fit_rows = parts.fit[parts.fit[S.POSITIVE]]
    u_codes, users = pd.factorize(fit_rows[S.USER_ID])
    items = pd.Index(ds.items[S.ITEM_ID].astype(str)).get_indexer(fit_rows[S.ITEM_ID])
    n_u, n_i = len(users), len(x)
    data_t = build_train_data(u_codes.astype(np.int64), items.astype(np.int64), np.ones(len(items), bool),
                              np.ones(len(items), np.float32), n_users=n_u, n_items=n_i, loss="bpr")
    spec = TowerSpec(n_items=n_i, n_users=n_u, item_dense_dim=x.shape[1], user_dense_dim=0, cell_vocab_sizes=[],
                     cell_dim=32, embed_dim=EMBED, hidden_dim=HIDDEN, n_layers=1, dropout=0.0, use_item_id=False,
                     use_user_id=False, use_item_features=True, use_history=False, id_dropout=0.0, normalize=False,
                     temperature=1.0, members=1)
    torch.manual_seed(0)
    model = TwoTower(spec, torch.from_numpy(x), torch.zeros(n_i, 0, dtype=torch.long), torch.zeros(n_u, 0),
                     torch.zeros(n_i))
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    sampler = BatchSampler(data_t, "bpr", BATCH, 1, logq=False, leave_one_out=False,
                           generator=torch.Generator().manual_seed(0))
    t0 = time.perf_counter()
    state = fit(model, opt, sampler, two_tower_loss("bpr"), epochs=1, progress=False)
    secs = time.perf_counter() - t0
    return {"samples": len(items), "samples_per_s": len(items) / secs, "epoch1_loss": state.history[0]["loss"],
            "flops_per_sample": flops_same(x.shape[1])}


# --- geotower default: time-to-quality -----------------------------------------------------------------------
def run_default(data: Path, out: Path, overrides: list[str]) -> dict[str, Any]:
    """``train_run`` with default settings; per-epoch validation NDCG@10 and wall time from its TensorBoard log."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from geotower.pipeline.train import train_run

    cfg = resolve(None, overrides)
    samples = int(split(data, overrides)[1].fit[S.POSITIVE].sum())
    start = time.time()
    result = train_run(data, out, cfg, progress=False)
    acc = EventAccumulator(str(out / "tb"))
    acc.Reload()
    curve = [{"epoch": e.step, "wall_s": e.wall_time - start, "ndcg": e.value} for e in acc.Scalars("epoch/ndcg")]
    steady = (len(curve) - 1) * samples / (curve[-1]["wall_s"] - curve[0]["wall_s"]) if len(curve) > 1 else None
    return {"curve": curve, "wall_s": result.wall_time_s, "best_epoch": result.best_epoch, "samples": samples,
            "samples_per_s": steady, "flops_per_sample": flops_default(out)}


def flops_default(run: Path) -> float:
    """Training FLOPs per positive of the saved towers: user MLP + (1 + negatives) item MLPs + logits, x3."""
    spec = artifacts.read_json(run / "model.json")
    cfg = artifacts.read_json(run / "config.json")["train"]
    cells = len(spec["cell_vocab_sizes"]) * spec["cell_dim"]
    item_in = spec["item_dense_dim"] + cells
    user_in = item_in + (spec["embed_dim"] if spec["use_history"] else 0) + spec["user_dense_dim"]

    def mlp(d_in: int) -> float:
        dims = [d_in] + [spec["hidden_dim"]] * spec["n_layers"] + [spec["embed_dim"]]
        return float(sum(2 * a * b for a, b in zip(dims[:-1], dims[1:], strict=True)))

    cols = 1 + cfg["n_negatives"]
    logits = 2.0 * cfg["batch_size"] * cols * spec["embed_dim"] if cfg["loss"] == "softmax" else 0.0
    return 3.0 * (mlp(user_in) + cols * mlp(item_in) + logits)


# --- orchestration ----------------------------------------------------------------------------------------------
def matmul_flops(threads: int, n: int = 2048, repeats: int = 10) -> float:
    """Measured float32 matmul FLOP/s of this machine at ``threads`` (best of ``repeats``)."""
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2.0 * n**3 / best


def _timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def worker(args: argparse.Namespace) -> None:
    """Run one contender in this process and write its JSON (with this process's peak RSS)."""
    torch.set_num_threads(args.threads)
    random.seed(0)
    overrides = ["seed=0", f"train.threads={args.threads}", *args.set]
    if args.worker == "original":
        res = run_original(args.data, args.orig_epochs, overrides)
    elif args.worker == "same":
        res = run_same(args.data, overrides)
    else:
        res = run_default(args.data, args.work / "run_default", overrides)
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    artifacts.write_json(args.work / f"{args.worker}.json", res)


def time_to(curve: list[dict[str, Any]], target: float, key: str) -> float | None:
    return next((c[key] for c in curve if c["ndcg"] >= target), None)


def report(work: Path, peak_flops: float, threads: int) -> None:
    r = {name: artifacts.read_json(work / f"{name}.json") for name in ("original", "same", "default")
         if (work / f"{name}.json").exists()}
    print(f"\nthreads={threads}; measured matmul peak {peak_flops / 1e9:.1f} GFLOP/s\n")
    print("| contender | samples/s | vs original | epoch-1 BPR loss | GFLOP/s (share of peak) | peak RSS MB |")
    print("|---|---|---|---|---|---|")
    base = r.get("original", {}).get("samples_per_s")
    for name, res in r.items():
        sps = res.get("samples_per_s")
        if sps is None:
            continue
        gf = sps * res["flops_per_sample"]
        ratio = f"{sps / base:.1f}x" if base else "-"
        loss = f"{res['epoch1_loss']:.4f}" if "epoch1_loss" in res else "-"
        print(f"| {name} | {sps:,.0f} | {ratio} | {loss} | {gf / 1e9:.1f} ({gf / peak_flops:.0%}) "
              f"| {res['peak_rss_mb']:.0f} |")
    if "original" in r and "default" in r:
        target = r["original"]["final_ndcg"]
        orig_s = r["original"]["curve"][-1]["train_s"]
        epochs = len(r["original"]["curve"])
        t = time_to(r["default"]["curve"], target, "wall_s")
        best = max(c["ndcg"] for c in r["default"]["curve"])
        print(f"\ntime-to-quality: original reaches val NDCG@10 {target:.4f} after {epochs} epochs "
              f"({orig_s:.0f} s of training, evaluation excluded); geotower default reaches it after "
              + (f"{t:.0f} s wall ({orig_s / t:.1f}x shorter)" if t else "never")
              + f"; its best val NDCG@10 {best:.4f}, whole train_run {r['default']['wall_s']:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="scratch folder outside the repo")
    parser.add_argument("--data", type=Path, help="existing dataset folder (default: simulate into --work)")
    parser.add_argument("--reviews", type=int, default=500_000, help="simulated reviews when --data is not given")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--orig-epochs", type=int, default=30, help="epochs of the original model")
    parser.add_argument("--only", nargs="+", default=["original", "same", "default"],
                        choices=["original", "same", "default"])
    parser.add_argument("--set", action="append", default=[], help="config override for both pipelines' splits "
                        "and the default run, e.g. train.epochs=10")
    parser.add_argument("--worker", choices=["original", "same", "default"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    args.work.mkdir(parents=True, exist_ok=True)
    data = merge_features(args.data, PHILLY / "geo_feature_matrix.csv") if args.data else \
        build_dataset(args.work, args.reviews)
    peak = matmul_flops(args.threads)
    for name in args.only:
        cmd = [sys.executable, __file__, "--work", str(args.work), "--data", str(data), "--threads",
               str(args.threads), "--orig-epochs", str(args.orig_epochs), "--worker", name]
        cmd += [a for s in args.set for a in ("--set", s)]
        subprocess.run(cmd, check=True)
    report(args.work, peak, args.threads)


if __name__ == "__main__":
    main()
