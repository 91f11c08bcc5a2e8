"""Explanations are exact decompositions of the linear towers' scores (checked against the real model code path)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from retrieve_fakes import make_tiny_run

from geotower.model.bundle import load_bundle
from geotower.retrieve.explain import Explainer
from geotower.retrieve.recommender import Query, open_recommender


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_run(tmp_path_factory.getbasetemp() / "tiny-real-run")


def test_feature_parts_add_up_to_the_item_side_of_the_score(run: Path) -> None:
    bundle = load_bundle(run)
    rec = open_recommender(bundle, run)
    res = rec.recommend(Query(user_id="u3", k=10))
    ex = rec.explainer
    assert isinstance(ex, Explainer) and ex.exact
    parts, names, _ = ex._feature_parts(res.qvec, res.rows)
    prior = (ex.item_emb[res.rows][:, ex.prior_cols] * res.qvec[ex.prior_cols]).sum(1) if ex.prior_cols else 0.0
    np.testing.assert_allclose(parts.sum(1) + prior, res.scores, atol=1e-4)
    assert "stars" in names


def test_liked_parts_add_up_to_the_score_when_the_user_tower_has_no_bias(run: Path) -> None:
    bundle = load_bundle(run)
    members = bundle.model.members if hasattr(bundle.model, "members") else [bundle.model]
    with torch.no_grad():
        for m in members:
            m.user_mlp[0].bias.zero_()
    rec = open_recommender(bundle, run)
    liked = ("p3", "p4", "p17")
    res = rec.recommend(Query(liked=liked, k=8))
    assert res.mode == "cold_start"
    reasons = rec.reasons(res)
    ex = rec.explainer
    hist = rec.item_rows(liked)
    parts = ex._history_parts(res.qvec, res.rows, np.sort(hist), None)
    prior = (ex.item_emb[res.rows][:, ex.prior_cols] * res.qvec[ex.prior_cols]).sum(1) if ex.prior_cols else 0.0
    np.testing.assert_allclose(parts.sum(0) + prior, res.scores, atol=1e-4)
    assert all(r["exact"] and {x["item_id"] for x in r["liked"]} <= set(liked) for r in reasons)
    assert all(abs(r["profile"]) < 1e-3 for r in reasons)  # nothing left unexplained without a bias


def test_records_carry_reasons_with_distance_and_text(run: Path) -> None:
    rec = open_recommender(load_bundle(run), run)
    res = rec.recommend(Query(user_id="u2", k=5, near=(39.954, -75.164), radius_km=2.0))
    rows = rec.records(res, explain=True)
    for row in rows:
        r = row["reasons"]
        assert r["distance_km"] == pytest.approx(row["distance_km"], abs=1e-3)
        assert r["liked"] and r["text"] and "km from the point" in r["text"]
    popular = rec.records(rec.recommend(Query(k=3)), explain=True)
    assert popular[0]["reasons"]["text"] == "most popular places"
    assert "reasons" not in rec.records(res)[0]
