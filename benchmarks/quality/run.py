"""Quality benchmark: geotower vs tuned peers on validation carved from the real training files.

Run from the repository root (dataset folders and runs go under ``--work``, never into the repo)::

    python -m benchmarks.quality.run --work /tmp/geotower-quality                 # everything
    python -m benchmarks.quality.run --work /tmp/gq --models popularity als lightfm
    python -m benchmarks.quality.run --work /tmp/gq --models geotower --grid geotower-sweep

Each model family's rows are stored in ``WORK/results/<dataset>.<family>.json`` (re-running replaces them),
and one comparison table of the best setting per model (by validation NDCG@10) is printed at the end.
"""

from __future__ import annotations

import argparse
import json
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from geotower import artifacts
from geotower.errors import GeotowerWarning

from . import peers
from .tasks import BUILDERS, Task, load_task

ALS_GRID = {"factors": [32, 64, 128], "reg": [0.1, 1.0, 10.0], "alpha": [1.0, 5.0, 20.0]}
LFM_GRID = {"dim": [64, 128], "lr": [0.05], "item_alpha": [0.0, 1e-6]}
PLAIN_GRID = {"dim": [64], "temperature": [0.05, 0.1, 0.2], "lr": [0.01]}
PRODUCT = ("recent", "itemknn", "rp3beta", "ease", "bpr")  # geotower.evaluate.baselines, tuned here
FAMILIES = ("popularity", "als", *PRODUCT, "lightfm", "plain", "geotower", "peers-best")


def run_family(task: Task, family: str, grid: str, save: Callable[[list[dict[str, Any]]], None]
               ) -> list[dict[str, Any]]:
    """All rows of one model family on one task."""
    weighted = task.name == "foursquare"
    if family == "popularity":
        return peers.run_popularity(task)
    if family == "als":
        return peers.run_als(task, {**ALS_GRID, "scheme": ["linear", "log"] if weighted else ["linear"]})
    if family in PRODUCT:
        return peers.run_product(task, family)
    if family == "plain":
        return peers.run_plain_two_tower(task, peers.content_features(task), PLAIN_GRID)
    if family == "lightfm":
        lfm_grid = {**LFM_GRID, "weighted": [False, True] if weighted else [False]}
        if task.name == "ml100k":
            return peers.run_lightfm(task, peers.movie_features(task), lfm_grid, max_epochs=40,
                                     label="lightfm-warp genre+year")
        if task.name == "yelp":
            return peers.run_lightfm(task, peers.content_features(task), lfm_grid, max_epochs=40,
                                     label="lightfm-warp categories+cells 1+2 km")
        rows = []
        for cells in ((1.0, 2.0), (0.5, 1.0, 2.0)):
            label = "lightfm-warp cells " + "+".join(f"{c:g}" for c in cells) + " km"
            rows += peers.run_lightfm(task, peers.grid_cell_features(task, cells), lfm_grid, max_epochs=40,
                                      label=label)
        return rows
    if family == "peers-best":
        return rerun_best(task, load_results(task.data_dir.parent.parent / "results", task.name))
    from .geotower_runs import run_geotower

    return run_geotower(task, grid, save)


def rerun_best(task: Task, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Refit the best stored setting of each peer (e.g. to add the standard error); one row per peer label."""
    out = peers.run_popularity(task)
    for row in best_rows([r for r in rows if r["model"].startswith(("als", "lightfm"))]):
        p = dict(row["params"])
        if row["model"] == "als":
            grid = {k: [p[k]] for k in ("factors", "reg", "alpha", "scheme")}
            out += peers.run_als(task, grid)
            continue
        grid = {"dim": [p["dim"]], "lr": [p["lr"]], "item_alpha": [p["item_alpha"]], "weighted": [p["weighted"]]}
        cells = tuple(float(c) for c in row["model"].split("cells ")[1].split(" ")[0].split("+")) \
            if "cells" in row["model"] else ()
        feats = peers.grid_cell_features(task, cells) if cells else peers.movie_features(task)
        out += peers.run_lightfm(task, feats, grid, max_epochs=p["epochs"], every=p["epochs"], label=row["model"])
    return out


def load_results(folder: Path, name: str) -> list[dict[str, Any]]:
    """All stored rows of one dataset: one file per model family (and geotower grid), later files win per label."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(folder.glob(f"{name}.*json"), key=lambda p: p.stat().st_mtime):
        new = json.loads(path.read_text())
        for label in {r["model"] for r in new}:
            rows[label] = [r for r in new if r["model"] == label]
    return [r for group in rows.values() for r in group]


def best_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Best row (validation NDCG@10) per model label, best first."""
    best: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["model"] not in best or row["ndcg"] > best[row["model"]]["ndcg"]:
            best[row["model"]] = row
    return sorted(best.values(), key=lambda r: -r["ndcg"])


def print_table(name: str, rows: list[dict[str, Any]], show_all: bool) -> None:
    shown = sorted(rows, key=lambda r: -r["ndcg"]) if show_all else best_rows(rows)
    users = shown[0]["users"] if shown else 0
    print(f"\n## {name} (validation, {users} users, NDCG@10 / Recall@10)\n")
    print("| model | val NDCG@10 (± s.e.) | val Recall@10 (± s.e.) | fit s | settings |")
    print("|---|---|---|---|---|")
    for r in shown:
        settings = ", ".join(f"{k}={v}" for k, v in r["params"].items())
        se = f" ± {r['ndcg_se']:.3f}" if "ndcg_se" in r else ""
        rse = f" ± {r['recall_se']:.3f}" if r.get("recall_se") is not None else ""
        print(f"| {r['model']} | {r['ndcg']:.4f}{se} | {r['recall']:.4f}{rse} | {r['fit_s']:.1f} | {settings} |")
    curves = [r for r in shown if r.get("curve")]
    for r in curves:  # geotower's time-to-quality: seconds since train_run started -> internal validation NDCG@10
        points = ", ".join(f"{sec:g} s: {ndcg:.4f}" for sec, _, ndcg in r["curve"])
        print(f"\n{r['model']} time-to-quality (internal validation NDCG@10): {points}; total fit {r['fit_s']:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="scratch folder outside the repo")
    parser.add_argument("--datasets", nargs="+", default=list(BUILDERS), choices=list(BUILDERS))
    parser.add_argument("--models", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--grid", default="geotower-sweep", help="geotower grid name (see geotower_runs.GRIDS)")
    parser.add_argument("--table-only", action="store_true", help="print the stored results, run nothing")
    parser.add_argument("--all", action="store_true", help="print every row, not only the best per model")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=GeotowerWarning)
    for name in args.datasets:
        results = args.work / "results"
        if not args.table_only:
            task = load_task(name, BUILDERS[name](args.work / "data" / name))
            for family in args.models:
                suffix = family if family != "geotower" else f"{family}.{args.grid}"
                path = results / f"{name}.{suffix}.json"
                artifacts.write_json(path, run_family(task, family, args.grid, partial(artifacts.write_json, path)))
        print_table(name, load_results(results, name), args.all)

if __name__ == "__main__":
    main()
