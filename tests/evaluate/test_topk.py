"""Known-answer tests for geotower.evaluate.topk: top-K selection, ties to the lower index, masking, batch sizes."""

from __future__ import annotations

import numpy as np
import pytest
from sparse_rows import csr

from geotower.errors import ConfigError
from geotower.evaluate.topk import block_batch_size, rank_topk


def test_rank_topk_orders_best_first() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.7], [4.0, 3.0, 2.0, 1.0]], dtype=np.float32)
    np.testing.assert_array_equal(rank_topk(scores, None, 3), [[1, 3, 2], [0, 1, 2]])


def test_rank_topk_ties_go_to_lower_index() -> None:
    # row 0: items 0, 2, 3 tie at 1.0 for two places -> 0 and 2; row 1: all equal -> 0, 1
    scores = np.array([[1.0, 0.0, 1.0, 1.0, 0.5], [2.0, 2.0, 2.0, 2.0, 2.0]], dtype=np.float32)
    np.testing.assert_array_equal(rank_topk(scores, None, 2), [[0, 2], [0, 1]])
    # a tie inside the list (not at the boundary) is ordered by index too: 3 > (1 == 4) > ...
    scores = np.array([[0.0, 5.0, 0.0, 9.0, 5.0]], dtype=np.float32)
    np.testing.assert_array_equal(rank_topk(scores, None, 3), [[3, 1, 4]])


def test_rank_topk_masks_excluded_and_nan_without_touching_input() -> None:
    scores = np.array([[0.9, 0.8, np.nan, 0.1], [0.9, 0.8, 0.7, 0.1]], dtype=np.float32)
    before = scores.copy()
    exclude = csr([[0], [1, 2]], 4)
    np.testing.assert_array_equal(rank_topk(scores, exclude, 2), [[1, 3], [0, 3]])
    np.testing.assert_array_equal(scores, before)


@pytest.mark.parametrize("k", [0, -1, 5])
def test_rank_topk_rejects_bad_k(k: int) -> None:
    with pytest.raises(ConfigError, match="K"):
        rank_topk(np.zeros((1, 4), dtype=np.float32), None, k)


def test_rank_topk_matches_full_stable_sort() -> None:
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, size=(50, 40)).astype(np.float32)  # many ties
    expected = np.argsort(-scores, axis=1, kind="stable")[:, :7]
    np.testing.assert_array_equal(rank_topk(scores, None, 7), expected)


def test_block_batch_size_bounds_memory() -> None:
    # 128 MiB / (4 bytes x 50,000 items) = 671 users; small catalogues cap at 1024; huge ones still get 1 user
    assert (block_batch_size(50_000), block_batch_size(10), block_batch_size(10**9)) == (671, 1024, 1)


def test_rank_topk_accepts_views_and_other_dtypes() -> None:
    base = np.array([[0.0, 3.0, 1.0, 2.0]])
    expected = [[1, 3]]
    np.testing.assert_array_equal(rank_topk(base[:, ::-1], None, 2), [[2, 0]])  # negative-stride view: 2, 1, 3, 0
    np.testing.assert_array_equal(rank_topk(np.asfortranarray(base), None, 2), expected)
    np.testing.assert_array_equal(rank_topk(base.astype(np.int64), None, 2), expected)
    np.testing.assert_array_equal(
        rank_topk(np.broadcast_to(base, (3, 4)), csr([[1], [], [3]], 4), 2), [[3, 2], [1, 3], [1, 2]]
    )
