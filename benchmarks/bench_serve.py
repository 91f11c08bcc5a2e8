"""Load test of ``geotower serve``: fixed request rate on 127.0.0.1 from a separate process, 30 s per scenario.

Catalogs: "demo" = a real run given with --run (e.g. the one ``geotower demo`` writes; copy it first, since the
index is saved into it); "philly" = the 5,851 real Philadelphia restaurants of ../shared/data/philly (real
coordinates, synthetic 128-d embeddings, 5,000 synthetic users); "synthetic" = 150,000 places in 30 city-like clusters
over ~100 x 100 km with clustered 128-d embeddings (HNSW index, as ``auto`` picks above 50,000 items).
For each catalog one server process is started (uvicorn, one worker) and a separate load process sends GET
/recommend for random known users, unfiltered and with a radius, at a fixed rate (open loop; latency is measured from
the scheduled send time, so queueing counts). Reports requests/s, p50/p99 latency, errors, and the geo/unfiltered
p99 ratio (target on 2 cores: p99 < 20 ms at 200 req/s with 150,000 items, zero errors, ratio <= 2).

    python benchmarks/bench_serve.py                       # philly + synthetic, 200 req/s, 30 s per scenario
    python benchmarks/bench_serve.py --catalog demo --run /tmp/demo-run-copy --radius-km 0.5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PHILLY = ROOT / ".." / "shared" / "data" / "philly" / "restaurants.csv"


# --- catalogs (server side) ---------------------------------------------------------------------------------------
@dataclass
class SyntheticBundle:
    """Contract-B-shaped bundle with generated embeddings (cold start = mean of liked item vectors)."""

    run_dir: Path
    item_ids: np.ndarray
    item_emb: np.ndarray
    user_ids: np.ndarray
    user_emb: np.ndarray
    items: object
    seen: object
    popularity: np.ndarray
    config: object = field(default=None)

    def embed_liked(self, liked_item_ids):
        rows = np.flatnonzero(np.isin(self.item_ids, list(liked_item_ids)))
        return self.item_emb[rows].mean(axis=0)


def _embeddings(rng: np.random.Generator, n: int, topics: np.ndarray) -> np.ndarray:
    """Unit vectors near one of the topic centres, scaled by 1/temperature like the real towers (0.1)."""
    v = topics[rng.integers(0, len(topics), n)] + 0.5 * rng.standard_normal((n, topics.shape[1]))
    return (10.0 * v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def make_bundle(catalog: str, run_dir: Path, seed: int = 0, dim: int = 128, n_users: int = 5000) -> SyntheticBundle:
    import pandas as pd
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    if catalog == "philly":
        places = pd.read_csv(PHILLY)
        items = pd.DataFrame({"item_id": places["business_id"].astype(str), "name": places["name"],
                              "lat": places["lat"], "lon": places["lon"]})
    else:
        n, centres = 150_000, rng.uniform([39.5, -75.7], [40.4, -74.6], size=(30, 2))
        c = rng.integers(0, 30, n)
        lat = centres[c, 0] + rng.normal(0, 0.03, n)  # ~3 km spread per cluster
        lon = centres[c, 1] + rng.normal(0, 0.04, n)
        items = pd.DataFrame({"item_id": [f"s{i}" for i in range(n)], "name": [f"Place {i}" for i in range(n)],
                              "lat": lat, "lon": lon})
    topics = rng.standard_normal((64, dim))
    n_items = len(items)
    per_user = 20
    rows = np.repeat(np.arange(n_users), per_user)
    seen = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, rng.integers(0, n_items, len(rows)))),
                         shape=(n_users, n_items))
    seen.sum_duplicates()
    return SyntheticBundle(run_dir, items["item_id"].to_numpy(), _embeddings(rng, n_items, topics),
                           user_ids=np.array([f"u{i}" for i in range(n_users)]),
                           user_emb=_embeddings(rng, n_users, topics), items=items, seen=seen,
                           popularity=np.asarray(seen.sum(axis=0)).ravel().astype(np.float64))


def _save_index(bundle: SyntheticBundle, run_dir: Path) -> None:
    """What ``geotower index RUN`` does: auto kind, recall@10 vs exact on 1,000 users, saved beside the run."""
    from geotower.retrieve.index_build import build_index, measure_recall
    from geotower.retrieve.index_store import embeddings_sha256, save_index

    t0 = time.perf_counter()
    index = build_index(bundle.item_emb, "auto", 50_000)
    build_s = time.perf_counter() - t0
    recall = measure_recall(index, bundle.item_emb, bundle.user_emb, k=10)
    save_index(run_dir, index, {"emb_sha256": embeddings_sha256(bundle.item_emb), "recall_at_10": recall,
                                "build_s": round(build_s, 1)})


def serve(catalog: str, run: str | None, port: int) -> None:
    """Server process: build the app (and its index) and serve it on 127.0.0.1 until killed."""
    import uvicorn

    from geotower.retrieve.service import create_app

    t0 = time.perf_counter()
    if catalog == "demo":
        app = create_app(run)
    else:
        run_dir = Path(tempfile.gettempdir()) / f"geotower-bench-{catalog}"  # seeded catalog: the index is reusable
        run_dir.mkdir(exist_ok=True)
        bundle = make_bundle(catalog, run_dir)
        if not (run_dir / "index.json").exists():
            _save_index(bundle, run_dir)
        app = create_app(run_dir, loader=lambda _p: bundle)
    print(json.dumps({"startup_s": round(time.perf_counter() - t0, 1)}), flush=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# --- load generator (separate process) ----------------------------------------------------------------------------
async def _one(pool: asyncio.Queue, host: str, port: int, path: str) -> tuple[int, bool]:
    """Send one GET on a pooled keep-alive connection; returns (status, reused)."""
    reader, writer = await pool.get()
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length"))
        await reader.readexactly(length)
    except BaseException:
        writer.close()  # a half-read connection is unusable: replace it
        pool.put_nowait(await asyncio.open_connection(host, port))
        raise
    pool.put_nowait((reader, writer))
    return status, True


async def _load(url_paths: list[str], port: int, rate: float, duration: float, conns: int) -> dict:
    pool: asyncio.Queue = asyncio.Queue()
    for _ in range(conns):
        pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    n = int(rate * duration)
    lat = np.full(n, np.nan)
    errors = 0
    start = time.perf_counter() + 0.2

    async def fire(i: int) -> None:
        nonlocal errors
        scheduled = start + i / rate
        await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
        try:
            status, _ = await asyncio.wait_for(_one(pool, "127.0.0.1", port, url_paths[i % len(url_paths)]), 5.0)
            if status != 200:
                errors += 1
            else:
                lat[i] = time.perf_counter() - scheduled
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError, StopIteration):
            errors += 1

    await asyncio.gather(*(fire(i) for i in range(n)))
    wall = time.perf_counter() - start
    ok = lat[np.isfinite(lat)] * 1000
    return {"sent": n, "ok": int(len(ok)), "errors": errors, "req_per_s": round(len(ok) / wall, 1),
            "p50_ms": round(float(np.percentile(ok, 50)), 2) if len(ok) else None,
            "p99_ms": round(float(np.percentile(ok, 99)), 2) if len(ok) else None,
            "max_ms": round(float(ok.max()), 2) if len(ok) else None}


def load(port: int, paths_file: str, rate: float, duration: float, conns: int) -> None:
    paths = Path(paths_file).read_text().splitlines()
    print(json.dumps(asyncio.run(_load(paths, port, rate, duration, conns))), flush=True)


# --- orchestration ------------------------------------------------------------------------------------------------
def _get(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
        return json.loads(resp.read())


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of the server process: comparable even when other jobs share the cores."""
    import psutil

    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _paths(port: int, radius_km: float | None, n: int = 2000, seed: int = 1) -> list[str]:
    """Random known users; with a radius, around random catalog places (so the circle is never empty)."""
    rng = np.random.default_rng(seed)
    users = _get(port, "/users?limit=10000")["users"]
    total = _get(port, "/health")["items"]
    places = _get(port, f"/items?limit=20000&offset={int(rng.integers(0, max(1, total - 20000)))}")["items"]
    located = [p for p in places if p["lat"] is not None]
    out = []
    for _ in range(n):
        path = f"/recommend?user_id={users[rng.integers(len(users))]}&k=10"
        if radius_km is not None:
            p = located[rng.integers(len(located))]
            path += f"&lat={p['lat']:.5f}&lon={p['lon']:.5f}&radius_km={radius_km}"
        out.append(path)
    return out


def run_catalog(catalog: str, args: argparse.Namespace) -> list[dict]:
    port = _free_port()
    cmd = [sys.executable, __file__, "_serve", catalog, str(port)] + (["--run", args.run] if catalog == "demo" else [])
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    try:
        startup = json.loads(server.stdout.readline())
        for _ in range(600):
            try:
                health = _get(port, "/health")
                break
            except OSError:
                time.sleep(0.1)
        results = []
        for name, radius in (("unfiltered", None), (f"radius {args.radius_km:g} km", args.radius_km)):
            with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
                f.write("\n".join(_paths(port, radius)))
            cpu0, load0 = _cpu_s(server.pid), os.getloadavg()[0]
            out = subprocess.run([sys.executable, __file__, "_load", str(port), f.name, str(args.rate),
                                  str(args.duration), str(args.conns)], capture_output=True, text=True, check=True)
            cpu = _cpu_s(server.pid) - cpu0
            os.unlink(f.name)
            stats = json.loads(out.stdout)
            res = {"catalog": catalog, "items": health["items"], "index": health["index"],
                   "recall_at_10": health["recall_at_10"], "query": name, "startup_s": startup["startup_s"],
                   "rate": args.rate, **stats, "server_cpu_ms_per_req": round(1000 * cpu / max(1, stats["ok"]), 2),
                   "loadavg_1m": [round(load0, 1), round(os.getloadavg()[0], 1)]}
            print(json.dumps(res), flush=True)
            results.append(res)
        return results
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_serve":
        run = sys.argv[sys.argv.index("--run") + 1] if "--run" in sys.argv else None
        return serve(sys.argv[2], run, int(sys.argv[3]))
    if len(sys.argv) > 1 and sys.argv[1] == "_load":
        port, paths, rate, duration, conns = sys.argv[2:7]
        return load(int(port), paths, float(rate), float(duration), int(conns))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--catalog", choices=["demo", "philly", "synthetic", "both"], default="both",
                        help="both = demo (with --run) or philly, then synthetic")
    parser.add_argument("--run", help="the real run served as the demo catalog")
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second (fixed, open loop)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per scenario")
    parser.add_argument("--conns", type=int, default=16, help="keep-alive connections (bounds in-flight requests)")
    parser.add_argument("--radius-km", type=float, default=2.0)
    parser.add_argument("--out", type=Path, help="write all results as JSON here")
    args = parser.parse_args()
    if args.catalog == "demo" and not args.run:
        parser.error("--catalog demo needs --run RUN")
    catalogs = ["demo" if args.run else "philly", "synthetic"] if args.catalog == "both" else [args.catalog]
    results = [r for c in catalogs for r in run_catalog(c, args)]
    print(f"\n{'catalog':<10} {'items':>7} {'index':<5} {'query':<16} {'req/s':>6} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'errors':>6} {'srv cpu ms/req':>14} {'load avg':>10}")
    for r in results:
        print(f"{r['catalog']:<10} {r['items']:>7} {r['index']:<5} {r['query']:<16} {r['req_per_s']:>6} "
              f"{r['p50_ms']:>7} {r['p99_ms']:>7} {r['errors']:>6} {r['server_cpu_ms_per_req']:>14} "
              f"{r['loadavg_1m'][0]:>4}-{r['loadavg_1m'][1]:<4}")
    for c in catalogs:
        base = next(r for r in results if r["catalog"] == c and r["query"] == "unfiltered")
        geo = next(r for r in results if r["catalog"] == c and r["query"] != "unfiltered")
        print(f"{c}: geo/unfiltered ratios: p50 {geo['p50_ms'] / base['p50_ms']:.2f}, p99 "
              f"{geo['p99_ms'] / base['p99_ms']:.2f}, server CPU per request "
              f"{geo['server_cpu_ms_per_req'] / base['server_cpu_ms_per_req']:.2f}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
