"""Wall time and peak memory of ``geotower simulate`` and ``geotower prepare yelp``, each next to a reference run.

1. simulate the Philadelphia restaurants (with their OSM features) for ``--reviews`` reviews, then prepare it;
2. simulate ``--big-reviews`` (>= 2M) reviews and prepare them: the peak memory of the streaming ingestion, with
   the default DuckDB ``--memory-limit 1GB`` and with 256MB;
3. references in the same run: prepare vs a bare DuckDB ``read_ndjson(ignore_errors) -> COPY parquet`` (no line
   numbers, no validation, no join); the simulator's JSON writer (pandas ``to_json``) vs ``json.dumps`` per row.

Each command runs in its own process under ``/usr/bin/time -v`` (peak RSS = "Maximum resident set size").
Data goes to ``--workdir`` (default /tmp/geotower-bench-ingest), never into the repository.

Run: ``python benchmarks/bench_ingest.py [--reviews 1000000] [--big-reviews 2500000]``
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "philly"
GEOTOWER = [str(Path(sys.executable).parent / "geotower")]  # the installed console script


def timed(cmd: list[str]) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds = user + system, peak RSS MiB) of ``cmd`` in a child process.

    CPU seconds are reported too because wall time on a shared machine depends on the other jobs running.
    """
    t0 = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))  # type: ignore
    cpu = sum(float(re.search(rf"{kind} time \(seconds\): ([\d.]+)", proc.stderr).group(1))  # type: ignore
              for kind in ("User", "System"))
    return wall, cpu, rss_kb / 1024


def simulate(out: Path, reviews: int) -> tuple[float, float, float]:
    return timed([*GEOTOWER, "simulate", "--places", str(DATA / "restaurants.csv"), "--features",
                  str(DATA / "geo_feature_matrix.csv"), "--reviews", str(reviews), "--out", str(out)])


def prepare(sim: Path, out: Path, *extra: str) -> tuple[float, float, float]:
    return timed([*GEOTOWER, "prepare", "yelp", "--business", str(sim / "business.json"), "--reviews",
                  str(sim / "review.json"), "--out", str(out), *extra])


def bare_duckdb(sim: Path, out: Path) -> tuple[float, float]:
    """Reference: DuckDB's own JSON reader straight to parquet (what ingestion costs without its checks)."""
    code = ("import duckdb, sys; con = duckdb.connect(); con.execute(\"SET memory_limit='2GB'\"); "
            "con.execute(f\"COPY (SELECT user_id, business_id AS item_id, stars AS rating, date FROM "
            "read_ndjson('{sys.argv[1]}', columns={{'user_id': 'VARCHAR', 'business_id': 'VARCHAR', "
            "'stars': 'DOUBLE', 'date': 'VARCHAR'}}, ignore_errors=true)) TO '{sys.argv[2]}' (FORMAT PARQUET)\")")
    return timed([sys.executable, "-c", code, str(sim / "review.json"), str(out)])


def json_writers(n: int) -> tuple[float, float]:
    """Seconds to write ``n`` review rows with pandas ``to_json`` (used) and with ``json.dumps`` per row."""
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"review_id": "A" * 22, "user_id": "B" * 22, "business_id": "C" * 22,
                       "stars": rng.integers(1, 6, n), "useful": 0, "funny": 0, "cool": 0, "text": "",
                       "date": "2020-01-01 10:00:00"})
    t0 = time.perf_counter()
    df.to_json(orient="records", lines=True)
    t_pandas = time.perf_counter() - t0
    t0 = time.perf_counter()
    "".join(json.dumps(r) + "\n" for r in df.to_dict(orient="records"))
    return t_pandas, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reviews", type=int, default=1_000_000)
    ap.add_argument("--big-reviews", type=int, default=2_500_000)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/geotower-bench-ingest"))
    args = ap.parse_args()
    work = args.workdir
    shutil.rmtree(work, ignore_errors=True)
    rows = []
    for label, n in (("", args.reviews), ("big", args.big_reviews)):
        sim, ds = work / f"sim{label}{n}", work / f"ds{label}{n}"
        rows.append((f"simulate {n:,} reviews", *simulate(sim, n)))
        size = (sim / "review.json").stat().st_size / 2**20
        rows.append((f"prepare yelp {n:,} reviews ({size:,.0f} MiB)", *prepare(sim, ds)))
        rows.append((f"  reference: bare DuckDB read_ndjson -> parquet, {n:,}", *bare_duckdb(sim, work / f"{n}.pq")))
    sim = work / f"simbig{args.big_reviews}"
    rows.append((f"prepare yelp {args.big_reviews:,}, --memory-limit 256MB",
                 *prepare(sim, work / "ds-256MB", "--memory-limit", "256MB")))
    print(f"{'step':60s} {'wall s':>8s} {'CPU s':>8s} {'peak RSS MiB':>13s}")
    for name, wall, cpu, rss in rows:
        print(f"{name:60s} {wall:8.1f} {cpu:8.1f} {rss:13.0f}")
    for i in (1, 4):
        print(f"{rows[i][0]}: {rows[i][1] / rows[i + 1][1]:.2f}x the reference's wall time, "
              f"{rows[i][2] / rows[i + 1][2]:.2f}x its CPU time, {rows[i][3] / rows[i + 1][3]:.2f}x its peak RSS")
    t_pandas, t_dumps = json_writers(200_000)
    print(f"JSON writer, 200,000 review rows: pandas to_json {t_pandas:.2f} s, json.dumps per row {t_dumps:.2f} s "
          f"-> {t_dumps / t_pandas:.1f}x faster")


if __name__ == "__main__":
    main()
