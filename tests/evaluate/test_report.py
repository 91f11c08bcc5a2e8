"""The results table, chart and TensorBoard scalars."""

from __future__ import annotations

import json
from pathlib import Path

from geotower.evaluate.report import ModelResult, log_tensorboard, markdown_table, write_report

M = {"recall": 0.5, "ndcg": 0.25, "hitrate": 1.0, "precision": 0.125, "recall_trunc": 0.5, "users": 4}
ROWS = [ModelResult("geotower", M, 12.345, {"best_epoch": 3}),
        ModelResult("content_twotower", {}, None, {}, note="skipped: no users table", label="content two-tower")]


def test_markdown_table_rows() -> None:
    lines = markdown_table(ROWS, 5).splitlines()
    assert lines[0] == ("| model | Recall@5 | NDCG@5 | HitRate@5 | Precision@5 | Recall (trunc.)@5 | fit s | params |")
    assert lines[2] == "| geotower | 0.5000 | 0.2500 | 1.0000 | 0.1250 | 0.5000 | 12.35 | best_epoch=3 |"
    assert lines[3] == "| content two-tower | - | - | - | - | - | - | - (skipped: no users table) |"


def test_write_report_and_tensorboard(tmp_path: Path) -> None:
    paths = write_report(tmp_path / "eval", ROWS, 5, {"users_evaluated": 4, "cold_users": 1})
    payload = json.loads(paths["json"].read_text())
    assert payload["k"] == 5 and payload["cold_users"] == 1 and payload["models"][1]["note"].startswith("skipped")
    assert "- cold users: 1" in paths["markdown"].read_text()
    assert paths["chart"].read_bytes()[:4] == b"\x89PNG"
    assert log_tensorboard(tmp_path / "tb", ROWS, 5)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    assert sorted(acc.Tags()["scalars"]) == sorted(f"eval/geotower/{m}" for m in M if m != "users")
    assert acc.Scalars("eval/geotower/ndcg")[0].value == 0.25


def test_report_html_is_self_contained(tmp_path) -> None:
    from geotower.evaluate.report import ModelResult, write_report

    rows = [ModelResult("geotower", {"recall": 0.2, "ndcg": 0.1, "hitrate": 0.3, "precision": 0.05,
                                     "recall_trunc": 0.2, "users": 10})]
    bands = [{"by": "user activity", "band": "1-3 train visits", "n": 5, "unit": "NDCG@10 per user", "mean": 0.1,
              "se": 0.02}]
    paths = write_report(tmp_path, rows, 10, {"test": "split"}, bands)
    html = paths["html"].read_text()
    assert html.count("data:image/png;base64,") == 2 and "http" not in html and "1-3 train visits" in html
