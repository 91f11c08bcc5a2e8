"""geotower.evaluate.metrics is the one import place of the three metric modules: each name is its home's object."""

from __future__ import annotations

import pytest

from geotower.evaluate import formulas, metrics, scoring, topk


@pytest.mark.parametrize("name", metrics.__all__)
def test_every_public_name_is_the_object_of_its_home_module(name: str) -> None:
    obj = getattr(metrics, name)
    homes = [m for m in (topk, formulas, scoring) if getattr(m, name, None) is obj]
    assert homes, name  # re-exported, not redefined
    if callable(obj):  # defined in one of the three, not in metrics.py
        assert obj.__module__ in {m.__name__ for m in homes}, (name, obj.__module__)


def test_the_metric_names_are_the_four_formulas_and_their_order_is_the_report_order() -> None:
    assert metrics.METRIC_NAMES == formulas.METRIC_NAMES
    assert {"recall", "ndcg", "hitrate", "precision"} <= set(metrics.METRIC_NAMES)
