"""geotower's metrics by band (evaluate.bands), on a hand-checked 3-user case."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from geotower.evaluate.bands import breakdowns


def test_breakdowns_by_activity_popularity_and_distance() -> None:
    # 3 users x 4 items; K=1. user0 hits its test item (item 1), user1 misses (item 2), user2 hits (item 3)
    topk = np.array([[1], [0], [3]])
    truth = sp.csr_matrix(np.array([[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=np.float32))
    train = sp.csr_matrix(np.array([[1, 0, 0, 0], [1, 1, 0, 1], [1, 1, 1, 0]], dtype=np.float32))
    lat = np.array([60.0, 60.001, 60.3, 60.0])
    lon = np.array([25.0, 25.0, 25.0, 25.1])
    rows = breakdowns(topk, truth, train, 1, lat, lon)
    dist = {r["band"]: r for r in rows if r["by"] == "distance from home"}
    # user0's home is item 0 (60.0, 25.0): item 1 is 0.1 km away and hit; user1's home is the mean of items 0, 1, 3
    # (~3 km from item 2 at 60.3): missed; user2's home is the mean of items 0-2: item 3 is ~6.8 km away and hit
    assert dist["< 0.5 km"]["mean"] == 1.0 and dist["< 0.5 km"]["n"] == 1
    assert sum(r["n"] for r in dist.values()) == 3
    # train users per item: 3, 2, 1, 1 -> item 0 head, item 1 torso, items 2-3 tail
    pop = {r["band"]: (r["mean"], r["n"]) for r in rows if r["by"] == "item popularity"}
    assert pop == {"torso (next 40 %)": (1.0, 1), "tail (last 50 %)": (0.5, 2)}
    act = [r for r in rows if r["by"] == "user activity"]
    assert sum(r["n"] for r in act) == 3
    assert np.isclose(sum(r["mean"] * r["n"] for r in act) / 3, 2 / 3)  # mean NDCG@1 = 2 of 3 users hit
