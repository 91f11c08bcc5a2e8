"""The demo end to end on a small simulation: every stage runs and the report holds the comparison table."""

from __future__ import annotations

from pathlib import Path

from geotower.config import resolve
from geotower.model.bundle import load_bundle
from geotower.pipeline.demo import DemoConfig, run_demo


def test_demo_end_to_end(tmp_path: Path) -> None:
    cfg = resolve(None, ["train.epochs=2", "model.hidden_dim=32", "model.embed_dim=16", "train.batch_size=512"])
    result = run_demo(tmp_path, cfg, DemoConfig(n_users=150, n_reviews=2500, seed=1), progress=False)
    models = [r.model for r in result.evaluation.rows]
    assert models == ["geotower", "popular", "recent", "itemknn", "rp3beta", "ease", "als", "bpr",
                      "content_twotower"]
    assert result.evaluation.users > 0
    report = (tmp_path / "report.md").read_text()
    assert "| geotower |" in report and "map.png" in report and "OpenStreetMap contributors" in report
    assert (tmp_path / "map.png").stat().st_size > 10_000
    assert not (tmp_path / "run" / "curves.png").exists() and "curves.png" not in report  # a fixed budget: none
    items = (tmp_path / "data" / "items.parquet")
    assert items.exists() and "roads_100m_len" in __import__("pandas").read_parquet(items).columns
    bundle = load_bundle(tmp_path / "run")  # a normal run that recommend/index/serve accept
    assert bundle.item_emb.shape[0] == len(bundle.items) > 400
