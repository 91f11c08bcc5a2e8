"""The simulator's ground truth: every diner's and place's exact parameters, and the utility they imply.

``write_ground_truth`` stores them beside the Yelp-format output (``ground_truth/``: users.parquet, items.parquet,
meta.json, README); ``ground_truth_scores`` reads them back and computes the noise-free utility ``U(u, i)``, e.g. for
an oracle NDCG.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from geotower import artifacts
from geotower.errors import DataError
from geotower.ingest.population import STAR_CUTS, Diners, Places, SimConfig, project
from geotower.schema import local_latlon


def _fixed_list(mat: npt.NDArray[np.float32]) -> pa.Array:
    return pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(mat, np.float32).ravel()), mat.shape[1])


def _write_parquet(path: Path, table: pa.Table) -> None:
    artifacts.write_with(path, lambda p: pq.write_table(table, p))


def write_ground_truth(out: Path, pl: Places, us: Diners, cfg: SimConfig) -> None:
    """users.parquet, items.parquet, meta.json and a README describing the model's exact parameters."""
    gt = out / "ground_truth"
    home_lat, home_lon = local_latlon(us.xy, pl.origin)
    _write_parquet(gt / "users.parquet", pa.table({
        "user_id": us.ids, "home_lat": home_lat, "home_lon": home_lon, "decay_per_km": us.decay,
        "rating_bias": us.bias, "join": us.join, "leave": us.leave, "n_reviews": us.counts,
        "taste": _fixed_list(us.taste)}))
    _write_parquet(gt / "items.parquet", pa.table({
        "item_id": pl.table["business_id"].to_numpy().astype(str), "lat": pl.table["lat"].to_numpy(),
        "lon": pl.table["lon"].to_numpy(), "quality": pl.quality, "vec": _fixed_list(pl.vec)}))
    artifacts.write_json(gt / "meta.json", {"origin": list(pl.origin), "blocks": pl.blocks, "config": asdict(cfg),
                                            "star_cuts": list(STAR_CUTS)})
    artifacts.write_text(gt / "README", GROUND_TRUTH_README)


GROUND_TRUTH_README = """Ground truth of a geotower simulation (see docs/simulator.md).
users.parquet: user_id, home_lat, home_lon, decay_per_km (g_u), rating_bias (b_u), join/leave (epoch s),
  n_reviews, taste (t_u, fixed-size float32 list, blocks in meta.json: categories | latent | osm).
items.parquet: item_id (= business_id), lat, lon, quality (q_i), vec (v_i, same blocks as taste).
Expected utility: U(u, i) = taste_u . vec_i + quality_i - decay_u * distance_km(home_u, item_i), distance in the
equirectangular projection around meta.json "origin"; choices are softmax(U) over candidates, without replacement.
geotower.ingest.simulate.ground_truth_scores(gt_dir, user_ids, item_ids) computes U.
"""


def ground_truth_scores(gt_dir: str | Path, user_ids: Sequence[str],
                        item_ids: Sequence[str]) -> npt.NDArray[np.float32]:
    """The simulator's expected (noise-free) choice utility ``U(u, i)`` for every pair, e.g. for an oracle NDCG.

    Args:
        gt_dir: the ``ground_truth`` folder written by :func:`simulate`.
        user_ids: (n_u,) simulated user ids.
        item_ids: (n_i,) business ids.

    Returns:
        (n_u, n_i) float32 utilities; higher = more likely to be chosen.

    Raises:
        DataError: an id that is not in the ground truth, naming the file and the id.
    """
    gt = Path(gt_dir)
    meta = artifacts.read_json(gt / "meta.json")
    users, items = pq.read_table(gt / "users.parquet"), pq.read_table(gt / "items.parquet")
    u = _positions(users.column("user_id").to_numpy(), user_ids, gt / "users.parquet", "user_id")
    i = _positions(items.column("item_id").to_numpy(), item_ids, gt / "items.parquet", "item_id")
    taste, vec = _matrix(users, "taste")[u], _matrix(items, "vec")[i]
    origin = (float(meta["origin"][0]), float(meta["origin"][1]))
    home = project(users.column("home_lat").to_numpy()[u], users.column("home_lon").to_numpy()[u], origin)
    place = project(items.column("lat").to_numpy()[i], items.column("lon").to_numpy()[i], origin)
    dist = np.linalg.norm(home[:, None, :] - place[None, :, :], axis=2)  # (n_u, n_i) km
    decay = users.column("decay_per_km").to_numpy()[u]
    util: np.ndarray = taste @ vec.T + items.column("quality").to_numpy()[i][None, :] - decay[:, None] * dist
    return util.astype(np.float32)


def _matrix(table: pa.Table, column: str) -> npt.NDArray[np.float32]:
    col = table.column(column).combine_chunks()
    flat: np.ndarray = col.flatten().to_numpy()
    return flat.reshape(len(col), -1).astype(np.float32)


def _positions(known: npt.NDArray[np.object_], wanted: Sequence[str], path: Path, column: str) -> npt.NDArray[np.int64]:
    pos: np.ndarray = pd.Index(known).get_indexer(np.asarray(wanted, dtype=object))
    if (pos < 0).any():
        bad = np.asarray(wanted, dtype=object)[pos < 0]
        raise DataError(f"{len(bad)} unknown ids, e.g. {bad[0]!r}", path=path, column=column)
    return pos.astype(np.int64)
