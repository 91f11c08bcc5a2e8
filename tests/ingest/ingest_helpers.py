"""Helpers shared by the ingest tests (a uniquely named module: ``conftest`` is not importable by name when several
test folders have one): the Yelp fixture generator and builders of single Yelp lines with fields changed or removed."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
HELSINKI = SHARED / "helsinki" / "restaurants.csv"
PHILLY = SHARED / "philly"


def _load_maker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_yelp_fixtures", FIXTURES / "make_yelp_fixtures.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MAKER = _load_maker()
DROP = object()  # pass as a field value to remove the field


def _apply(rec: dict[str, object], changes: dict[str, object]) -> str:
    for key, value in changes.items():
        if value is DROP:
            rec.pop(key)
        else:
            rec[key] = value
    return json.dumps(rec)


def business(tag: str, categories: str | None = "Restaurants", **changes: object) -> str:
    """One Yelp business line (Philadelphia, 4 stars) with fields changed or removed (``DROP``)."""
    rec = MAKER.business_record(tag, f"Place {tag}", "Philadelphia", "PA", 39.95, -75.15, 4.0, categories)
    return _apply(rec, changes)


def review(i: int, user: str, tag: str, stars: int = 4, **changes: object) -> str:
    """One Yelp review line dated 2020-01-01 with fields changed or removed (``DROP``)."""
    return _apply(MAKER.review_record(i, user, tag, stars, "2020-01-01 00:00:00"), changes)
