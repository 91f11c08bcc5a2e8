"""Real Yelp end to end: ``prepare yelp`` -> ``train`` -> ``evaluate`` on a slice of the shared real review files.

The files are read in place (never copied). The slice is one metro (Pittsburgh: ~160 businesses) so the test stays
fast; the full-size numbers are in docs/quality.md (benchmarks/quality).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from geotower.cli import app

YELP = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "yelp-real"
pytestmark = pytest.mark.skipif(not (YELP / "review.json").exists(), reason=f"real Yelp files not found in {YELP}")
runner = CliRunner()


def test_prepare_train_evaluate_on_real_yelp(tmp_path: Path) -> None:
    data, run = tmp_path / "data", tmp_path / "run"
    res = runner.invoke(app, ["prepare", "yelp", "--business", str(YELP / "business.json"), "--reviews",
                              str(YELP / "review.json"), "--out", str(data), "--city", "Pittsburgh", "--threads", "1"])
    assert res.exit_code == 0, res.output
    items = pd.read_parquet(data / "items.parquet")
    inter = pd.read_parquet(data / "interactions.parquet")
    assert 50 < len(items) < 400 and set(inter["item_id"]) <= set(items["item_id"])
    assert items["categories"].str.contains("Restaurants|Food").all()  # the restaurant rule

    res = runner.invoke(app, ["train", str(data), "--out", str(run), "--set", "eval.test_fraction=0.2"])
    assert res.exit_code == 0, res.output
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["n_items"] == len(items) and manifest["rows"]["test"] > 0

    res = runner.invoke(app, ["evaluate", str(run), "--baselines", "--json"])
    assert res.exit_code == 0, res.output
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    text = json.dumps(metrics)
    assert "MostPopular" in text
    g = metrics["models"][0]  # geotower: standard errors, and the paired test against the best baseline
    assert g["model"] == "geotower" and g["se"]["ndcg"] > 0 and g["paired"]["n"] == metrics["users_evaluated"]
    assert g["paired"]["vs"] in text and 0.0 <= g["paired"]["ndcg_p"] <= 1.0
    assert "Paired t-test" in (run / "eval" / "report.md").read_text()
    assert (run / "eval" / "report.md").exists()
