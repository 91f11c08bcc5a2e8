"""A/B wall time of ``train_run`` with the defaults between two source trees, interleaved, one process per run.

Why: a change to training must show its effect on the same box in the same minutes as the code it replaces
(timing on a shared 2-core box drifts with its load); running the two trees alternately, each in a fresh process,
makes the ratio fair. The validation metrics are printed too, so a change meant to be exact can be seen to be.

Run from the repository root, e.g. against the previous commit in a worktree::

    git worktree add /tmp/geotower-old HEAD~1
    python benchmarks/ab_train.py --old /tmp/geotower-old/src --data /tmp/gq/data/yelp /tmp/gq/data/ml100k --reps 2

Each line: data set, tree, repetition, the load average before the run, then wall and CPU seconds of the child
(``train_run`` alone for the wall, the whole process and its refit processes for CPU), validation NDCG@10 and the
best epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = r'''
import json, resource, sys, time
from geotower.config import resolve
from geotower.pipeline.train import train_run
cfg = resolve(None, ["eval.test_fraction=0.2", "seed=0", "train.threads=1"])
t = time.perf_counter()
r = train_run(sys.argv[1], sys.argv[2], cfg, progress=False)
wall = time.perf_counter() - t
ru, rc = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"wall_s": round(wall, 2), "cpu_s": round(ru.ru_utime + ru.ru_stime + rc.ru_utime + rc.ru_stime, 2),
                  "val_ndcg": r.val_metrics.get("ndcg"), "best_epoch": r.best_epoch}))
'''


def run_once(src: Path, data: Path, out: Path) -> dict[str, object]:
    """One ``train_run`` of ``data`` with the package at ``src``, in a fresh single-threaded process."""
    env = dict(os.environ, PYTHONPATH=str(src), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", CHILD, str(data), str(out)], env=env, capture_output=True,
                          text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        raise SystemExit(f"train_run failed with {src} on {data}:\n{done.stderr[-2000:]}")
    return json.loads(lines[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, required=True, help="the reference tree's src folder")
    parser.add_argument("--new", type=Path, default=ROOT / "src", help="the tree under test (default: this one)")
    parser.add_argument("--data", type=Path, nargs="+", required=True, help="dataset folders")
    parser.add_argument("--reps", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="geotower-ab-") as tmp:
        for data in args.data:
            for rep in range(args.reps):
                for name, src in (("old", args.old), ("new", args.new)):
                    load = os.getloadavg()[0]
                    got = run_once(src, data, Path(tmp) / f"{data.name}-{name}-{rep}")
                    print(data.name, name, rep, f"load={load:.2f}", json.dumps(got), flush=True)


if __name__ == "__main__":
    main()
