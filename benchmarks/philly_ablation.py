"""Philadelphia ablation + oracle: what OSM features and the geo encoding add to NDCG@10, and the ceiling.

Run from the repository root (data and runs go under ``--work``, outside the repo)::

    python benchmarks/philly_ablation.py --work /tmp/abl --reviews 300000 --epochs 8 --doc docs/ablation.md

Data: the 5,851 real Philadelphia restaurants with their real OSM context matrix (``../shared/data/philly``);
reviews come from the simulator run WITH that matrix, so diners' taste depends on OSM context. The simulated Yelp
files go through ``prepare_yelp`` and the 54 OSM columns are merged into ``items`` (business_id -> item_id). A
second dataset folder holds the same interactions and items with the OSM columns dropped, so both share one split.

Variants (same split, same seed; the default config otherwise, except ``--epochs``):

* (a) ``full``: geotower's default config (IDs + history + OSM + geo grid encoding).
* (b) ``no_osm``: the items table without the 54 OSM columns.
* (c) ``no_geo``: ``features.geo_encoding="none"`` (no lat/lon encoding).
* (d) ``neither``: no OSM columns and no geo encoding.
* (e) ``content``: the original content-only two-tower (``CONTENT_OVERRIDES`` of pipeline.evaluate_rows).
* (f) ``popular``: MostPopular.
* (g) ``oracle``: the simulator's noise-free utility ``U(u, i)`` for every (test user, item), ranked by the same
  masking and metric code: the ceiling.

Every row is judged by ``evaluate_scorer`` on the same warm held-out users (models via ``evaluate_run``, the
official path), and reported as NDCG@K, Recall@K and the share of the oracle's NDCG.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from geotower import artifacts
from geotower import schema as S
from geotower.config import resolve
from geotower.evaluate.baselines import MostPopular
from geotower.evaluate.heldout import HeldOut, build_heldout
from geotower.evaluate.metrics import evaluate_scorer
from geotower.ingest.dataset import load_dataset
from geotower.ingest.protocol import split
from geotower.ingest.simulate import SimConfig, ground_truth_scores, simulate
from geotower.ingest.yelp import prepare_yelp
from geotower.pipeline.evaluate import evaluate_run
from geotower.pipeline.evaluate_rows import CONTENT_OVERRIDES
from geotower.pipeline.train import train_run

REPO = Path(__file__).resolve().parents[1]
PHILLY = REPO.parent / "shared" / "data" / "philly"
NO_GEO = ('features.geo_encoding="none"',)
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


@dataclass(frozen=True)
class Variant:
    """One trained row: which dataset folder ("full" or "no_osm") and which ``--set`` overrides."""

    label: str
    data: str
    overrides: tuple[str, ...] = ()


VARIANTS: dict[str, Variant] = {
    "full": Variant("(a) geotower default: OSM + geo grid", "full"),
    "no_osm": Variant("(b) no OSM features", "no_osm"),
    "no_geo": Variant("(c) no geo encoding", "full", NO_GEO),
    "neither": Variant("(d) neither OSM nor geo", "no_osm", NO_GEO),
    "content": Variant("(e) content-only two-tower (original)", "full", CONTENT_OVERRIDES),
}
LABELS = {"popular": "(f) MostPopular", "oracle": "(g) oracle: simulator utility"}


@dataclass
class Row:
    """One line of the results table."""

    key: str
    label: str
    metrics: dict[str, float]
    train_s: float | None = None
    epochs: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Data:
    """The two dataset folders (same interactions, with and without OSM columns) and the simulator's truth."""

    full: Path
    no_osm: Path
    ground_truth: Path

    def folder(self, name: str) -> Path:
        return self.full if name == "full" else self.no_osm


# --- data -------------------------------------------------------------------------------------------------
def build_data(work: Path, n_reviews: int, seed: int = 0, places: Path = PHILLY / "restaurants.csv",
               features: Path = PHILLY / "geo_feature_matrix.csv", threads: int = 2) -> Data:
    """Simulate (with OSM-dependent taste), prepare, merge the OSM matrix, and derive the no-OSM folder.

    Folders are keyed by size and seed and reused when complete, so a rerun only retrains.
    """
    base = work / f"data_{n_reviews}_s{seed}"
    sim, full, no_osm = base / "sim", base / "ds_full", base / "ds_no_osm"
    if not (sim / "ground_truth" / "meta.json").exists():
        simulate(places, sim, SimConfig(n_reviews=n_reviews, seed=seed), features=features)
    if not (full / "items.parquet").exists() or not (full / "interactions.parquet").exists():
        prepare_yelp(sim / "business.json", sim / "review.json", full, threads=threads)
        merge_osm(full / "items.parquet", features)
    if not (no_osm / "items.parquet").exists():
        drop_osm(full, no_osm)
    return Data(full, no_osm, sim / "ground_truth")


def osm_columns(frame: pd.DataFrame) -> list[str]:
    """The ``<layer>_<r>m_<count|len|area>`` columns of a frame."""
    pattern = re.compile(r"^[a-z_]+_\d+m_(count|len|area)$")
    return [str(c) for c in frame.columns if pattern.match(str(c))]


def merge_osm(items_path: Path, features: Path) -> None:
    """Left-join the OSM matrix onto ``items`` by id; places without a row get 0 (no mapped context)."""
    items = artifacts.read_table(items_path, dtype={S.ITEM_ID: str})
    feats = artifacts.read_table(features, dtype={"business_id": str}).rename(columns={"business_id": S.ITEM_ID})
    cols = osm_columns(feats)
    merged = items.drop(columns=[c for c in cols if c in items.columns]).merge(
        feats[[S.ITEM_ID, *cols]].drop_duplicates(S.ITEM_ID), on=S.ITEM_ID, how="left")
    merged[cols] = merged[cols].fillna(0.0)
    artifacts.write_table(items_path, merged)
    artifacts.write_marker(items_path.parent, "dataset", 2)  # re-seal the edited folder (complete.json)


def drop_osm(full: Path, out: Path) -> None:
    """Same interactions and dataset.toml, items without the OSM columns (so the split is identical)."""
    out.mkdir(parents=True, exist_ok=True)
    for name in ("interactions.parquet", S.DATASET_TOML):
        artifacts.write_bytes(out / name, (full / name).read_bytes())
    items = artifacts.read_table(full / "items.parquet", dtype={S.ITEM_ID: str})
    artifacts.write_table(out / "items.parquet", items.drop(columns=osm_columns(items)))


# --- held-out protocol and the reference rows -------------------------------------------------------------
def heldout(data_dir: Path, overrides: Sequence[str] = ()) -> HeldOut:
    """The evaluate pipeline's held-out matrices for the run config's split (``geotower.ingest.protocol.split``)."""
    cfg = resolve(None, overrides)
    ds = load_dataset(data_dir)
    rows = split(ds, cfg)
    train, test = rows.train, rows.test
    users = np.array(sorted(set(ds.interactions[S.USER_ID])), dtype=str)
    return build_heldout(train, test, users, ds.items[S.ITEM_ID].to_numpy().astype(str))


def oracle_scorer(gt_dir: Path, proto: HeldOut) -> Callable[[np.ndarray], np.ndarray]:
    """score_fn returning the simulator's expected utility ``U(u, i)`` over all items for a batch of users."""

    def score(users: np.ndarray) -> np.ndarray:
        return ground_truth_scores(gt_dir, proto.user_ids[users], proto.item_ids)  # (b, n_items)

    return score


def reference_rows(proto: HeldOut, gt_dir: Path, k: int) -> list[Row]:
    """MostPopular and the oracle, on the evaluate pipeline's users, mask and metric code."""
    pop = MostPopular().fit(proto.train_pos)
    rows = [Row("popular", LABELS["popular"],
                evaluate_scorer(pop.score, proto.users, proto.relevant, proto.seen, k, proto.batch_size))]
    oracle = evaluate_scorer(oracle_scorer(gt_dir, proto), proto.users, proto.relevant, proto.seen, k,
                             proto.batch_size)
    return rows + [Row("oracle", LABELS["oracle"], oracle)]


# --- trained variants -------------------------------------------------------------------------------------
def run_variant(key: str, data: Data, work: Path, base: Sequence[str], reuse: bool = True,
                progress: bool = False) -> Row:
    """Train (or reuse an identical earlier run of) one variant, then score it with ``evaluate_run``."""
    variant = VARIANTS[key]
    cfg = resolve(None, [*base, *variant.overrides])
    run = work / "runs" / key
    manifest_path = run / artifacts.MANIFEST
    same = (reuse and manifest_path.exists()
            and artifacts.read_json(run / artifacts.CONFIG_JSON) == cfg.to_dict()
            and Path(artifacts.read_json(manifest_path).get("dataset_dir", "")) == data.folder(variant.data).resolve())
    if not same:
        train_run(data.folder(variant.data), run, cfg, progress=progress)
    manifest = artifacts.read_json(manifest_path)
    result = evaluate_run(run, progress=False)
    metrics = result.row("geotower").metrics
    epochs = f"{manifest.get('best_epoch')}/{manifest.get('epochs_run')}"
    return Row(key, variant.label, metrics, manifest.get("wall_time_s"), epochs, {"reused": same})


def run_all(data: Data, work: Path, variants: Sequence[str], base: Sequence[str], k: int = 10,
            reuse: bool = True, progress: bool = False) -> list[Row]:
    """Every requested trained variant, then MostPopular and the oracle on the same held-out users."""
    rows = []
    for key in variants:
        t0 = time.perf_counter()
        rows.append(run_variant(key, data, work, base, reuse, progress))
        print(f"{key}: ndcg@{k}={rows[-1].metrics['ndcg']:.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    proto = heldout(data.full, base)
    refs = reference_rows(proto, data.ground_truth, k)
    for row in rows:
        if row.metrics.get("users") != refs[0].metrics["users"]:
            raise RuntimeError(f"{row.key} was judged on {row.metrics.get('users')} users, the references on "
                               f"{refs[0].metrics['users']}: the splits differ")
    return rows + refs


# --- report -----------------------------------------------------------------------------------------------
def table(rows: Sequence[Row], k: int) -> str:
    """Markdown table: NDCG@K, Recall@K, % of the oracle's NDCG, train time and best/run epochs."""
    oracle = next((r.metrics["ndcg"] for r in rows if r.key == "oracle"), float("nan"))
    lines = [f"| variant | NDCG@{k} | Recall@{k} | % of oracle NDCG | train s | best/run epochs |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        train_s = "" if r.train_s is None else f"{r.train_s:.0f}"
        pct = 100.0 * r.metrics["ndcg"] / oracle if oracle > 0 else float("nan")
        lines.append(f"| {r.label} | {r.metrics['ndcg']:.4f} | {r.metrics['recall']:.4f} | {pct:.1f} % | "
                     f"{train_s} | {r.epochs} |")
    return "\n".join(lines)


def results_block(rows: Sequence[Row], k: int, command: str, settings: dict[str, Any], wall_s: float) -> str:
    users = rows[-1].metrics["users"]
    info = ", ".join(f"{key}={value}" for key, value in settings.items())
    return (f"{BEGIN}\nCommand: `{command}`\n\nSettings: {info}; {users:,} warm held-out users evaluated; total "
            f"benchmark wall time {wall_s / 60:.1f} min.\n\n{table(rows, k)}\n{END}")


def write_doc(doc: Path, block: str) -> None:
    """Replace the results block of ``doc`` (between the markers), or append one."""
    text = doc.read_text() if doc.exists() else "# Philadelphia ablation\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    artifacts.write_text(doc, text)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/philly_ablation"), help="data + runs (not the repo)")
    parser.add_argument("--reviews", type=int, default=300_000, help="simulated reviews")
    parser.add_argument("--seed", type=int, default=0, help="simulator and run seed")
    parser.add_argument("--epochs", type=int, default=8, help="train.epochs cap per variant (default config: 30)")
    parser.add_argument("--threads", type=int, default=2, help="train.threads")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"subset of {','.join(VARIANTS)}")
    parser.add_argument("--no-reuse", action="store_true", help="retrain even when an identical run exists")
    parser.add_argument("--doc", type=Path, help="markdown file whose results block is (re)written")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    base = [f"seed={args.seed}", f"train.epochs={args.epochs}", f"train.threads={args.threads}"]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    data = build_data(args.work, args.reviews, args.seed, threads=args.threads)
    print(f"data ready ({time.perf_counter() - t0:.0f} s)", flush=True)
    rows = run_all(data, args.work, variants, base, reuse=not args.no_reuse)
    k = resolve(None, base).eval.k
    settings = {"reviews": f"{args.reviews:,}", "seed": args.seed, "epochs": args.epochs, "threads": args.threads}
    command = "python benchmarks/philly_ablation.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    block = results_block(rows, k, command, settings, time.perf_counter() - t0)
    print(block)
    if args.doc is not None:
        write_doc(args.doc, block)


if __name__ == "__main__":
    main()
