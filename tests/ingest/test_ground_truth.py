"""The simulator's ground truth: hand-computed utilities and unknown ids (geotower.ingest.ground_truth)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from geotower.errors import DataError
from geotower.ingest.ground_truth import ground_truth_scores


def test_ground_truth_scores_known_answer(tmp_path: Path) -> None:
    # user at (0, 0), item 0.01 deg east on the equator: d = 0.01 * 111.32 km = 1.1132 km
    # U = [1, 2].[3, 4] + 0.5 - 1.0 * 1.1132 = 11 + 0.5 - 1.1132 = 10.3868; item at the user's home: 11 + 0.5 = 11.5
    gt = tmp_path / "ground_truth"
    gt.mkdir()
    vec = pa.FixedSizeListArray.from_arrays(pa.array(np.array([3, 4, 3, 4], np.float32)), 2)
    pq.write_table(pa.table({"user_id": ["u"], "home_lat": [0.0], "home_lon": [0.0], "decay_per_km": [1.0],
                             "taste": pa.FixedSizeListArray.from_arrays(pa.array(np.array([1, 2], np.float32)), 2)}),
                   gt / "users.parquet")
    pq.write_table(pa.table({"item_id": ["a", "b"], "lat": [0.0, 0.0], "lon": [0.01, 0.0], "quality": [0.5, 0.5],
                             "vec": vec}), gt / "items.parquet")
    (gt / "meta.json").write_text(json.dumps({"origin": [0.0, 0.0]}))
    np.testing.assert_allclose(ground_truth_scores(gt, ["u"], ["a", "b"]), [[10.3868, 11.5]], atol=1e-4)
    with pytest.raises(DataError, match=r"items\.parquet, column 'item_id': 1 unknown ids, e.g. 'zz'"):
        ground_truth_scores(gt, ["u"], ["a", "zz"])
