"""Full-Yelp-size run on one machine: every stage timed, with its peak RSS, at 1/16, 1/4 and full size.

Data: the 5,851 real Philadelphia restaurants (../shared/data/philly) tiled with offsets into synthetic cities
(26 tiles = 152,126 businesses at full size, on a 0.5-degree grid so no tile overlaps another), then
``geotower simulate`` writes Yelp-format business.json + review.json (7,000,000 reviews by 2,000,000 users at full
size; sizes scale businesses, reviews and users together). Each stage is one CLI process, as a user runs it:

    simulate -> prepare yelp -> train -> evaluate -> index -> serve (200 req/s, benchmarks/bench_serve.py)

and is measured from outside: wall time, peak RSS of its largest process (``resource.RUSAGE_CHILDREN`` after it
exits) and peak PSS of its whole process tree (sampled every 0.2 s; ``train`` forks its refit models). Train uses
the defaults except ``--epochs`` when given (then s/epoch from the run's history is what scales; the default 30
epochs at full size do not fit in an evening on two cores). Results go to a JSON file and a markdown table on
stdout.

    python benchmarks/bench_scale.py --sizes 16,4 --workdir /tmp/scale-bench      # 1/16 and 1/4
    nice python benchmarks/bench_scale.py --sizes 1 --stages prepare,train --epochs 1
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHILLY = ROOT / ".." / "shared" / "data" / "philly" / "restaurants.csv"
FULL = {"tiles": 26, "reviews": 7_000_000, "users": 2_000_000}
STAGES = ("simulate", "prepare", "train", "evaluate", "index", "serve")
TILE_DEG = 0.5


def tiled_places(out: Path, tiles: int) -> Path:
    """The Philadelphia restaurants copied ``tiles`` times on a 0.5-degree grid, ids suffixed by tile."""
    import pandas as pd

    path = out / f"places-{tiles}.csv"
    if path.exists():
        return path
    base = pd.read_csv(PHILLY)
    side = math.ceil(math.sqrt(tiles))
    parts = [base.assign(business_id=base["business_id"] + f"-t{t}", lat=base["lat"] + (t // side) * TILE_DEG,
                         lon=base["lon"] + (t % side) * TILE_DEG, city=f"City{t}") for t in range(tiles)]
    out.mkdir(parents=True, exist_ok=True)
    pd.concat(parts, ignore_index=True).to_csv(path, index=False)
    return path


def _measured(cmd: list[str]) -> list[str]:
    """Wrap ``cmd`` so its own peak RSS is printed as the last line.

    ``RUSAGE_CHILDREN`` of this benchmark is the maximum over every stage run so far, so each stage gets a fresh
    wrapper process whose children are that stage alone (the largest process of its tree).
    """
    code = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]).returncode; "
            "print('PEAK_RSS_KIB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r)")
    return [sys.executable, "-c", code, *cmd]


def _pss_kib(pid: int) -> int:
    """Proportional set size of one process (shared pages split among their users), 0 once it has gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            return next((int(ln.split()[1]) for ln in fh if ln.startswith("Pss:")), 0)
    except OSError:
        return 0


def _tree_peak(root: int, done: threading.Event, out: list[int]) -> None:
    """Sample the summed PSS of ``root`` and its descendants every 0.2 s; the peak goes to ``out[0]``.

    Why: ``train`` forks a process per refit model, and ``RUSAGE_CHILDREN`` only reports the largest single process;
    PSS counts the pages the forked children share with their parent once.
    """
    import psutil

    while not done.wait(0.2):
        try:
            pids = [root, *(c.pid for c in psutil.Process(root).children(recursive=True))]
        except psutil.Error:
            continue
        out[0] = max(out[0], sum(_pss_kib(pid) for pid in pids))


def stage(name: str, cmd: list[str], logs: Path) -> dict[str, float]:
    """Run one stage as a child process; its wall time, peak RSS of its largest process and peak PSS of its whole
    process tree (MiB)."""
    log = logs / f"{name}.log"
    start = time.perf_counter()
    done, tree = threading.Event(), [0]
    with open(log, "w") as fh:
        proc = subprocess.Popen(_measured(cmd), stdout=fh, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
        sampler = threading.Thread(target=_tree_peak, args=(proc.pid, done, tree), daemon=True)
        sampler.start()
        returncode = proc.wait()
        done.set()
        sampler.join()
    seconds = time.perf_counter() - start
    if returncode != 0:
        raise SystemExit(f"{name} failed (exit {returncode}); see {log}:\n{log.read_text()[-3000:]}")
    peak = [ln for ln in log.read_text().splitlines() if ln.startswith("PEAK_RSS_KIB")]
    res = {"seconds": round(seconds, 1), "rss_mib": round(int(peak[-1].split()[1]) / 1024) if peak else -1,
           "tree_pss_mib": round(tree[0] / 1024)}
    print(f"  {name}: {res['seconds']} s, peak RSS {res['rss_mib']} MiB (largest process), process tree peak PSS "
          f"{res['tree_pss_mib']} MiB", flush=True)
    return res


def run_size(div: int, args: argparse.Namespace) -> dict[str, object]:
    tiles = max(1, round(FULL["tiles"] / div))
    reviews, users = FULL["reviews"] // div, FULL["users"] // div
    work = args.workdir / f"size-1-{div}"
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    gt = [str(ROOT / ".venv" / "bin" / "geotower")] if (ROOT / ".venv" / "bin" / "geotower").exists() else \
        [sys.executable, "-m", "geotower.cli"]
    places = tiled_places(args.workdir, tiles)
    result: dict[str, object] = {"size": f"1/{div}" if div > 1 else "full", "businesses": tiles * 5851,
                                 "reviews": reviews, "users": users}
    print(f"size {result['size']}: {tiles * 5851:,} businesses, {reviews:,} reviews, {users:,} users", flush=True)
    train_set = ["--set", f"train.epochs={args.epochs}"] if args.epochs else []
    commands = {
        "simulate": [*gt, "simulate", "--places", str(places), "--out", str(work / "yelp"), "--reviews", str(reviews),
                     "--users", str(users), "--seed", "0"],
        "prepare": [*gt, "prepare", "yelp", "--business", str(work / "yelp" / "business.json"), "--reviews",
                    str(work / "yelp" / "review.json"), "--out", str(work / "data"), "--memory-limit", "1GB"],
        "train": [*gt, "train", str(work / "data"), "--out", str(work / "run"), "--quiet", *train_set],
        "evaluate": [*gt, "evaluate", str(work / "run"), "--quiet", "--json"],
        "index": [*gt, "index", str(work / "run"), "--kind", "hnsw"],
        "serve": [sys.executable, str(ROOT / "benchmarks" / "bench_serve.py"), "--catalog", "demo", "--run",
                  str(work / "run"), "--rate", "200", "--duration", "20", "--out", str(work / "serve.json")],
    }
    for name in args.stages:
        result[name] = stage(name, commands[name], logs)
        if name == "train":
            result["train_detail"] = _train_detail(work / "run", reviews, result[name])  # type: ignore[arg-type]
        if name == "index" and (work / "run" / "index.json").exists():
            result["index_detail"] = json.loads((work / "run" / "index.json").read_text())
        if name == "serve" and (work / "serve.json").exists():
            result["serve_detail"] = json.loads((work / "serve.json").read_text())
    return result


def _train_detail(run: Path, reviews: int, res: dict[str, float]) -> dict[str, object]:
    """Epochs run and seconds per epoch from the run's history (config.json / metrics), where recorded."""
    detail: dict[str, object] = {}
    for name in ("history.json", "metrics.json", "train.json"):
        if (run / name).exists():
            detail[name] = json.loads((run / name).read_text())
    return detail


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="16,4,1", help="divisors of the full size, e.g. 16,4,1")
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--epochs", type=int, default=0, help="train.epochs override (0 = the default)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/geotower-bench-scale"))
    parser.add_argument("--out", type=Path, help="JSON results (default: WORKDIR/results.json)")
    args = parser.parse_args()
    args.stages = [s for s in args.stages.split(",") if s]
    results = [run_size(int(d), args) for d in args.sizes.split(",")]
    out = args.out or args.workdir / "results.json"
    out.write_text(json.dumps(results, indent=1))
    print("\n| size | businesses | reviews | users | " + " | ".join(f"{s} s (RSS / tree PSS MiB)" for s in args.stages)
          + " |")
    print("|---" * (4 + len(args.stages)) + "|")
    for r in results:
        cells = [f"{r[s]['seconds']} ({r[s]['rss_mib']} / {r[s]['tree_pss_mib']})"  # type: ignore[index]
                 for s in args.stages]
        print(f"| {r['size']} | {r['businesses']:,} | {r['reviews']:,} | {r['users']:,} | " + " | ".join(cells) + " |")
    print(f"results: {out}")


if __name__ == "__main__":
    main()
