"""Recommender modes on the known-answer catalog of conftest.py (place i scores i for u0, -i for u1)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from geotower.errors import DataError
from geotower.retrieve import recommender as R
from geotower.retrieve.catalog import load_catalog, save_added
from geotower.retrieve.index import ExactIndex, FaissIndex
from geotower.retrieve.recommender import Query, Recommender, UnknownIdError, open_recommender

STEP_KM = 1.11195080233533  # 0.01 deg of longitude on the equator


def _rec(bundle, index=None) -> Recommender:
    catalog = load_catalog(bundle, bundle.run_dir)
    index = index if index is not None else ExactIndex(catalog.emb)
    return Recommender(catalog, bundle.user_ids, bundle.user_emb, bundle.seen, index, bundle.embed_liked)


def _ids(rec: Recommender, result) -> list[str]:
    return rec.catalog.item_ids[result.rows].tolist()


def test_known_user_excludes_train_seen(bundle) -> None:
    rec = _rec(bundle)
    res = rec.recommend(Query("u0", k=3))
    assert (_ids(rec, res), res.scores.tolist(), res.mode) == (["i6", "i5", "i4"], [6, 5, 4], "user")  # i7 seen
    assert _ids(rec, rec.recommend(Query("u0", k=2, exclude_seen=False))) == ["i7", "i6"]
    assert _ids(rec, rec.recommend(Query("u1", k=2))) == ["i1", "i2"]  # i0 seen


def test_radius_returns_k_among_places_inside_never_topk_then_filter(bundle) -> None:
    rec = _rec(bundle)
    # within 2.3 km of (0, 0): places 0, 1, 2. u0's global top-3 (6, 5, 4) are all outside.
    res = rec.recommend(Query("u0", k=2, near=(0.0, 0.0), radius_km=2.3))
    assert _ids(rec, res) == ["i2", "i1"]
    np.testing.assert_allclose(res.distance_km, [2 * STEP_KM, STEP_KM], rtol=1e-6)
    # asking for more than exist inside: all 3 of them (none seen by u0)
    assert _ids(rec, rec.recommend(Query("u0", k=10, near=(0.0, 0.0), radius_km=2.3))) == ["i2", "i1", "i0"]


def test_empty_radius_says_so(bundle) -> None:
    res = _rec(bundle).recommend(Query("u0", k=3, near=(40.0, 40.0), radius_km=1.0))
    assert len(res.rows) == 0 and "no places within 1 km" in res.note


def test_point_without_radius_ranks_globally_and_reports_distance(bundle) -> None:
    res = _rec(bundle).recommend(Query("u0", k=1, near=(0.0, 0.0)))
    assert res.rows.tolist() == [6]
    np.testing.assert_allclose(res.distance_km, [6 * STEP_KM], rtol=1e-6)


def test_popularity_without_user_and_in_radius(bundle) -> None:
    rec = _rec(bundle)
    res = rec.recommend(Query(k=3))
    assert (_ids(rec, res), res.scores.tolist(), res.mode) == (["i2", "i0", "i7"], [8, 5, 4], "popularity")
    assert "no user given" in res.note
    # within 3.4 km of (0, 0.05): places 2..7 (3 steps = 3.34 km); most popular there: 2 (8), 7 (4), 5 (2)
    assert _ids(rec, rec.recommend(Query(k=3, near=(0.0, 0.05), radius_km=3.4))) == ["i2", "i7", "i5"]
    unknown = rec.recommend(Query("nobody", k=1))
    assert unknown.mode == "popularity" and "'nobody' is unknown" in unknown.note


def test_cold_start_from_liked_excludes_them(bundle) -> None:
    rec = _rec(bundle)
    # liked i1, i3 -> mean embedding [2, 1] -> score 2i + 1; i1/i3 excluded
    res = rec.recommend(Query("new-user", liked=("i1", "i3"), k=3))
    assert (_ids(rec, res), res.scores.tolist(), res.mode) == (["i7", "i6", "i5"], [15, 13, 11], "cold_start")
    with pytest.raises(UnknownIdError, match="'zz'"):
        rec.recommend(Query(liked=("i1", "zz")))


@pytest.mark.parametrize("query, column", [
    (Query(k=0), "k"), (Query(k=1001), "k"), (Query(near=(91.0, 0.0)), "lat"), (Query(near=(0.0, -181.0)), "lon"),
    (Query(radius_km=1.0), "radius_km"), (Query(near=(0.0, 0.0), radius_km=0.0), "radius_km"),
    (Query(near=(0.0, 0.0), radius_km=float("nan")), "radius_km"),
])
def test_invalid_queries_raise_data_error(bundle, query: Query, column: str) -> None:
    with pytest.raises(DataError) as err:
        _rec(bundle).recommend(query)
    assert err.value.column == column


def test_added_items_join_catalog_rankable_and_geo_filtered(bundle, run_dir) -> None:
    added = pd.DataFrame({"item_id": ["n1"], "name": ["New"], "lat": [0.0], "lon": [0.005]})
    save_added(run_dir, added, np.array([[100.0, 0.0]], dtype=np.float32))
    rec = _rec(bundle)
    assert rec.n_items == 9 and rec.catalog.n_trained == 8
    assert _ids(rec, rec.recommend(Query("u0", k=1))) == ["n1"]
    assert _ids(rec, rec.recommend(Query("u0", k=2, near=(0.0, 0.0), radius_km=1.0))) == ["n1", "i0"]
    assert rec.item_record(8) == {"item_id": "n1", "name": "New", "lat": 0.0, "lon": 0.005, "popularity": 0.0,
                                  "trained": False}
    # liking only an untrained item cannot use the user tower: popularity with a note
    res = rec.recommend(Query(liked=("n1",), k=1))
    assert res.mode == "popularity" and "no liked item was trained on" in res.note


def test_ann_path_with_many_candidates_still_returns_k(bundle, monkeypatch) -> None:
    monkeypatch.setattr(R, "EXACT_CANDIDATES_MAX", 0)  # force the FAISS id-selector path
    catalog = load_catalog(bundle, bundle.run_dir)
    rec = _rec(bundle, FaissIndex("hnsw", 2).build(catalog.emb))
    assert _ids(rec, rec.recommend(Query("u0", k=2, near=(0.0, 0.0), radius_km=2.3))) == ["i2", "i1"]
    assert _ids(rec, rec.recommend(Query("u0", k=3))) == ["i6", "i5", "i4"]


def test_open_recommender_builds_in_memory_index_when_none_saved(bundle, run_dir) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # exact in-memory index: no warning
        rec = open_recommender(bundle, run_dir)
    assert rec.index.kind == "flat"
    with pytest.warns(UserWarning, match="built a hnsw index in memory"):
        assert open_recommender(bundle, run_dir, exact_max_items=4).index.kind == "hnsw"
