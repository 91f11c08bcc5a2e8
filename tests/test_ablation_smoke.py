"""Smoke test of ``benchmarks/philly_ablation.py`` on a 3k-review simulation: the table's rows and the ceiling.

Not a timing test. One trained variant (the default) keeps it short; the no-OSM folder must share the full folder's
interactions (hence the split) and lose exactly the OSM columns.
"""

from __future__ import annotations

import importlib.util
import sys
import warnings
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
PHILLY = REPO.parent / "shared" / "data" / "philly"

# one epoch of small towers: the smoke test checks the plumbing, not the quality
TINY = ["seed=0", "train.epochs=1", "train.threads=1", "model.hidden_dim=32", "model.embed_dim=16", "model.cell_dim=8"]

pytestmark = pytest.mark.skipif(not (PHILLY / "geo_feature_matrix.csv").exists(), reason="needs ../shared/data")


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("philly_ablation", REPO / "benchmarks" / "philly_ablation.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["philly_ablation"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModuleType, object, list]:
    ab = _load()
    work = tmp_path_factory.mktemp("ablation")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = ab.build_data(work, 3000, seed=0, threads=1)
        rows = ab.run_all(data, work, ["full"], TINY)
    return ab, data, rows


def test_rows_and_oracle_ceiling(result: tuple[ModuleType, object, list]) -> None:
    ab, _, rows = result
    assert [r.key for r in rows] == ["full", "popular", "oracle"]
    users = {r.metrics["users"] for r in rows}
    assert len(users) == 1 and users.pop() > 0  # every row judged on the same held-out users
    oracle = rows[-1].metrics["ndcg"]
    assert all(r.metrics["ndcg"] <= oracle for r in rows[:-1])
    assert oracle > 0.1  # far above chance (10 / 5,851 items)
    text = ab.table(rows, 10)
    assert text.count("\n") == 1 + len(rows)  # header, rule, one line per row
    assert "| (g) oracle: simulator utility | " in text and "| 100.0 % |" in text


def test_no_osm_folder_drops_exactly_the_osm_columns(result: tuple[ModuleType, object, list]) -> None:
    ab, data, _ = result
    full = pd.read_parquet(data.full / "items.parquet")
    no_osm = pd.read_parquet(data.no_osm / "items.parquet")
    osm = ab.osm_columns(full)
    assert len(osm) == 54  # 3 radii x (4 point layers x count + 7 line/area layers x (count, len/area)) = 54
    assert list(no_osm.columns) == [c for c in full.columns if c not in osm]
    assert (data.full / "interactions.parquet").read_bytes() == (data.no_osm / "interactions.parquet").read_bytes()


def test_write_doc_replaces_only_the_results_block(tmp_path: Path) -> None:
    ab = _load()
    doc = tmp_path / "a.md"
    doc.write_text(f"# T\nintro\n{ab.BEGIN}\nold\n{ab.END}\noutro\n")
    ab.write_doc(doc, f"{ab.BEGIN}\nnew\n{ab.END}")
    assert doc.read_text() == f"# T\nintro\n{ab.BEGIN}\nnew\n{ab.END}\noutro\n"
