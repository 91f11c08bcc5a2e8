"""``geotower index`` / ``recommend`` composition (pipeline.recommend) and its CLI shell, on the known-answer run."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from geotower import artifacts
from geotower._cli import index as index_cli
from geotower._cli import recommend as recommend_cli
from geotower._cli import serve as serve_cli
from geotower.errors import ArtifactError, DataError
from geotower.pipeline import recommend as P
from geotower.retrieve.recommender import Query


def _new_items(path: Path, **extra) -> Path:
    table = pd.DataFrame({"item_id": ["n1", "n2"], "name": ["New 1", "New 2"], "lat": [0.0, 0.0],
                          "lon": [0.005, 0.5], "f0": [100.0, -100.0], "f1": [0.0, 0.0], **extra})
    artifacts.write_table(path, table)
    return path


def test_build_index_records_kind_and_recall(run_dir, loader) -> None:
    res = P.build_run_index(run_dir, "auto", loader=loader)
    assert (res.kind, res.n_items, res.recall_at_10) == ("flat", 8, 1.0)
    meta = json.loads((run_dir / "index.json").read_text())
    assert meta["kind"] == "flat" and meta["recall_at_10"] == 1.0 and len(meta["emb_sha256"]) == 64
    hnsw = P.build_run_index(run_dir, "hnsw", loader=loader)
    assert hnsw.kind == "hnsw" and (run_dir / "index.faiss").exists() and 0.0 <= hnsw.recall_at_10 <= 1.0


@pytest.mark.parametrize("kind", ["flat", "hnsw", None])
def test_add_items_grows_catalog_and_index(run_dir, loader, tmp_path, kind) -> None:
    if kind is not None:
        P.build_run_index(run_dir, kind, loader=loader)
    res = P.add_items(run_dir, _new_items(tmp_path / "new.parquet"), loader=loader)
    assert (res.n_items, res.n_added) == (10, 2)
    # n1 = [100, 0] scores 100 for u0 and sits 0.556 km from (0, 0); n2 = [-100, 0] is u1's favourite
    assert P.recommend_run(run_dir, Query("u0", k=1), loader=loader).items[0]["item_id"] == "n1"
    # within 1 km of (0, 0): i0 (seen by u1, excluded) and n1 (score -100); n2 is 55 km away
    near = P.recommend_run(run_dir, Query("u1", k=5, near=(0.0, 0.0), radius_km=1.0), loader=loader)
    assert [it["item_id"] for it in near.items] == ["n1"]
    assert P.recommend_run(run_dir, Query("u1", k=1), loader=loader).items[0]["item_id"] == "n2"


def test_add_items_rejects_bad_files(run_dir, loader, tmp_path) -> None:
    path = _new_items(tmp_path / "new.parquet")
    P.add_items(run_dir, path, loader=loader)
    with pytest.raises(DataError, match="already in the run") as err:
        P.add_items(run_dir, path, loader=loader)
    assert (err.value.row, err.value.column) == (0, "item_id")
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"item_id": ["x"], "lat": [95.0], "lon": [0.0], "f0": [1.0], "f1": [1.0]}).to_csv(bad, index=False)
    with pytest.raises(DataError, match=r"\[-90, 90\]"):
        P.add_items(run_dir, bad, loader=loader)
    pd.DataFrame({"item_id": ["x"], "f0": [1.0]}).to_csv(bad, index=False)
    with pytest.raises(ArtifactError, match="f1"):
        P.add_items(run_dir, bad, loader=loader)


@pytest.fixture
def cli(monkeypatch, loader) -> typer.Typer:
    monkeypatch.setattr(P, "_load", lambda run_dir, _loader: loader(run_dir))
    app = typer.Typer()
    app.command("index")(index_cli.index)  # without geotower.cli's error boundary: exceptions stay visible
    app.command("recommend")(recommend_cli.recommend)
    app.command("serve")(serve_cli.serve)
    return app


def test_cli_index_and_recommend(cli, run_dir, tmp_path) -> None:
    runner = CliRunner()
    out = runner.invoke(cli, ["index", str(run_dir), "--kind", "hnsw"])
    assert out.exit_code == 0, out.output
    assert "index hnsw: 8 items (0 added)" in out.output
    out = runner.invoke(cli, ["recommend", str(run_dir), "--user", "u0", "--k", "2", "--near", "0,0",
                              "--radius-km", "2.3", "--json"])
    assert out.exit_code == 0, out.output
    body = json.loads(out.output)
    assert [it["item_id"] for it in body["items"]] == ["i2", "i1"] and body["mode"] == "user"
    out = runner.invoke(cli, ["recommend", str(run_dir), "--liked", "i1,i3", "--k", "1"])
    assert out.exit_code == 0 and "Place 7" in out.output and "cold_start" in out.output
    out = runner.invoke(cli, ["recommend", str(run_dir), "--user", "nobody", "--k", "1"])
    assert out.exit_code == 0 and "note: user 'nobody' is unknown" in out.output.replace("\n", " ")
    out = runner.invoke(cli, ["index", str(run_dir), "--add", str(_new_items(tmp_path / "n.csv"))])
    assert out.exit_code == 0 and "10 items (2 added)" in out.output


def test_cli_rejects_bad_point(cli, run_dir) -> None:
    out = CliRunner().invoke(cli, ["recommend", str(run_dir), "--near", "0;0"])
    assert isinstance(out.exception, DataError) and "LAT,LON" in str(out.exception)
    out = CliRunner().invoke(cli, ["recommend", str(run_dir), "--near", "0,0", "--radius-km", "-1"])
    assert isinstance(out.exception, DataError) and out.exception.column == "radius_km"


def test_cli_serve_binds_loopback_by_default(cli, run_dir, loader, monkeypatch) -> None:
    import uvicorn

    from geotower.retrieve import service

    calls: list[dict] = []
    monkeypatch.setattr(service, "_load_bundle", loader)
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append({"app": app, **kw}))
    out = CliRunner().invoke(cli, ["serve", str(run_dir)])
    assert out.exit_code == 0, out.output
    assert (calls[0]["host"], calls[0]["port"]) == ("127.0.0.1", 8000)
    assert calls[0]["app"].state.recommender.n_items == 8
    out = CliRunner().invoke(cli, ["serve", str(run_dir), "--host", "0.0.0.0", "--port", "9000"])
    assert "no authentication" in out.output and calls[1]["host"] == "0.0.0.0"
