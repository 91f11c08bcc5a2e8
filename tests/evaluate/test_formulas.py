"""Known-answer tests for geotower.evaluate.formulas (expected values worked out by hand in comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sparse_rows import csr

from geotower.errors import DataError
from geotower.evaluate.formulas import ground_truth, topk_metrics


def test_topk_metrics_known_answer() -> None:
    relevant = csr([[2, 5], [0, 1, 2, 3, 4], [7]], 10)
    topk = np.array([[5, 1, 2], [9, 0, 8], [1, 2, 3]])
    m = topk_metrics(topk, relevant, 3)
    d = [1.0, 1 / math.log2(3), 0.5]  # discounts at ranks 1..3
    # row 0: hits at ranks 1, 3 of |rel|=2; row 1: hit at rank 2 of |rel|=5; row 2: no hit
    ndcg0 = (d[0] + d[2]) / (d[0] + d[1])
    ndcg1 = d[1] / (d[0] + d[1] + d[2])
    assert m["recall"] == pytest.approx((1.0 + 1 / 5 + 0) / 3)
    assert m["ndcg"] == pytest.approx((ndcg0 + ndcg1) / 3)
    assert m["ndcg"] == pytest.approx((0.919721 + 0.296082) / 3, abs=1e-6)
    assert m["hitrate"] == pytest.approx(2 / 3)
    assert m["precision"] == pytest.approx((2 / 3 + 1 / 3) / 3)
    assert m["recall_trunc"] == pytest.approx((2 / 2 + 1 / 3) / 3)


def test_topk_metrics_uses_only_first_k_columns_and_perfect_is_one() -> None:
    relevant = csr([[0, 1]], 5)
    m = topk_metrics(np.array([[1, 0, 4]]), relevant, 2)
    assert m == {"recall": 1.0, "ndcg": 1.0, "hitrate": 1.0, "precision": 1.0, "recall_trunc": 1.0}
    m = topk_metrics(np.array([[4, 3, 0]]), relevant, 2)  # the hit at rank 3 is past K
    assert m["hitrate"] == 0.0


def test_topk_metrics_rejects_rows_without_relevant() -> None:
    with pytest.raises(DataError, match="no relevant"):
        topk_metrics(np.array([[0, 1]]), csr([[]], 3), 2)


def test_ground_truth_drops_seen() -> None:
    gt = ground_truth(csr([[0, 1], [2]], 3), csr([[1], [2]], 3))
    assert gt[0].indices.tolist() == [0] and gt[1].nnz == 0
