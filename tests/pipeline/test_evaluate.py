"""evaluate_run on a hand-built dataset whose held-out answer is known, with an oracle run (fake embeddings).

Dataset (timestamps make the temporal cut land at t=4 with eval.test_fraction=0.4, and the validation cut inside
train at t=3 with train.val_fraction=0.3, so validation = each user's 4th positive):
- 18 items i00..i17 in 3 groups of 6; 18 warm users u00..u17, user u in group u // 6 at position p = u % 6.
- train (t <= 4): positives at own-group positions p..p+3 (t=1..4), one negative (rating 1) in the next group (t=2).
- test (t=100): positive at position p+4 (the answer), negative at position p+5 (rating 1: not relevant).
- c0, c1: only a test positive (cold: counted, not evaluated); r0: test positive i00 already seen in train (no truth).
The oracle run embeds items one-hot and each warm user as its answer item, so at K=2: recall = ndcg = hitrate = 1,
precision = 1/2, 18 users evaluated, 2 cold.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import typer
from typer.testing import CliRunner

from geotower import artifacts
from geotower.config import resolve
from geotower.errors import ConfigError, DataError, GeotowerError, GeotowerWarning
from geotower.ingest.dataset import DatasetSpec, write_dataset
from geotower.pipeline import evaluate as E
from geotower.pipeline import evaluate_rows as R

N, G = 18, 6
TINY_GRIDS = {"itemknn": {"n_neighbors": (2, None)}, "als": {"factors": (4,), "regularization": (0.1, 1.0)},
              "bpr": {"factors": (4,)}}


def item(group: int, pos: int) -> str:
    return f"i{group * G + pos % G:02d}"


def answer(u: int) -> str:
    return item(u // G, u % G + 4)


def make_interactions() -> pd.DataFrame:
    rows = []
    for u in range(N):
        g, p = divmod(u, G)
        rows += [(f"u{u:02d}", item(g, p + j), 5.0, 1 + j) for j in range(4)]
        rows += [(f"u{u:02d}", item((g + 1) % 3, p), 1.0, 2), (f"u{u:02d}", answer(u), 5.0, 100),
                 (f"u{u:02d}", item(g, p + 5), 1.0, 100)]
    rows += [("c0", "i00", 5.0, 100), ("c1", "i03", 4.0, 100)]
    rows += [("r0", "i00", 5.0, 1), ("r0", "i01", 5.0, 2), ("r0", "i00", 5.0, 100)]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


def oracle_bundle(run_dir: Path) -> SimpleNamespace:
    item_ids = np.array([f"i{j:02d}" for j in range(N)])
    user_ids = np.array([f"u{u:02d}" for u in range(N)] + ["r0"])
    user_emb = np.zeros((len(user_ids), N), dtype=np.float32)
    user_emb[np.arange(N), pd.Index(item_ids).get_indexer([answer(u) for u in range(N)])] = 1.0
    return SimpleNamespace(run_dir=run_dir, item_ids=item_ids, item_emb=np.eye(N, dtype=np.float32),
                           user_ids=user_ids, user_emb=user_emb)


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A run folder (config + manifest) over the hand-built dataset, with the oracle as its model."""
    data = tmp_path / "data"
    items = pd.DataFrame({"item_id": [f"i{j:02d}" for j in range(N)], "lat": 60.0 + np.arange(N) / 1000,
                          "lon": 24.9 + np.arange(N) / 1000})
    write_dataset(data, make_interactions(), items, DatasetSpec())
    out = tmp_path / "run"
    cfg = resolve(None, ["eval.test_fraction=0.4", "train.val_fraction=0.3",
                         'eval.baselines=["popular", "itemknn", "als", "bpr"]'])
    artifacts.write_manifest(out, cfg.to_dict(), {}, {"dataset_dir": str(data.resolve()), "best_epoch": 3,
                                                      "wall_time_s": 1.5})
    monkeypatch.setattr(R, "load_bundle", lambda path, verify_data=True: oracle_bundle(Path(path)))
    return out


def test_oracle_known_answer_and_protocol_counts(run: Path) -> None:
    result = E.evaluate_run(run, k=2, progress=False)
    m = result.row("geotower").metrics
    assert (m["recall"], m["ndcg"], m["hitrate"], m["precision"], m["recall_trunc"]) == (1.0, 1.0, 1.0, 0.5, 1.0)
    assert (result.users, result.cold_users, result.unknown_users, result.unknown_items) == (18, 2, 0, 0)
    assert result.test_rows == 39 and "cutoff 4" in result.test_source
    assert result.row("geotower").params == {"best_epoch": 3} and result.row("geotower").fit_s == 1.5


def test_writes_json_markdown_chart_and_tensorboard(run: Path) -> None:
    result = E.evaluate_run(run, k=2, progress=False)
    payload = json.loads((run / "eval" / "metrics.json").read_text())
    assert payload["k"] == 2 and payload["users_evaluated"] == 18 and payload["cold_users"] == 2
    assert payload["models"][0]["model"] == "geotower" and payload["models"][0]["metrics"]["precision"] == 0.5
    assert "| geotower | 1.0000 ± 0.0000 | 1.0000 ± 0.0000 | 1.0000 | 0.5000 | 1.0000 | 1.50 | best_epoch=3 |" in \
        (run / "eval" / "report.md").read_text()
    assert "per_user" not in payload["models"][0] and payload["models"][0]["se"] == {"ndcg": 0.0, "recall": 0.0}
    assert result.paths["chart"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert any((run / "tb").glob("events.out.tfevents.*"))


def test_baselines_share_users_and_are_tuned_without_test_rows(run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen_by_tuning: list[sp.csr_matrix] = []
    real = R.B.tune_and_fit

    def spy(name: str, train: sp.csr_matrix, val_train: sp.csr_matrix, val_relevant: sp.csr_matrix, *args: Any,
            **kwargs: Any) -> Any:
        seen_by_tuning.extend([train, val_train, val_relevant, kwargs["val_seen"]])
        return real(name, train, val_train, val_relevant, *args, **kwargs)

    monkeypatch.setattr(R.B, "tune_and_fit", spy)
    result = E.evaluate_run(run, k=2, baselines=True, progress=False, grids=TINY_GRIDS)
    assert [r.model for r in result.rows] == ["geotower", "popular", "itemknn", "als", "bpr"]
    assert all(r.metrics["users"] == 18 and 0.0 <= r.metrics["ndcg"] <= 1.0 for r in result.rows)
    assert result.row("itemknn").params["n_neighbors"] in (2, None) and "val_ndcg" in result.row("itemknn").params
    assert result.row("als").params["regularization"] in (0.1, 1.0) and result.row("popular").params == {}
    # no test pair (user, answer item) reaches any matrix the baselines were fitted or tuned on
    users, items = pd.Index(sorted(set(make_interactions()["user_id"]))), pd.Index([f"i{j:02d}" for j in range(N)])
    test_pairs = [(users.get_loc(f"u{u:02d}"), items.get_loc(answer(u))) for u in range(N)]
    assert seen_by_tuning and all(m[r, c] == 0 for m in seen_by_tuning for r, c in test_pairs)


def test_standard_errors_and_paired_test_against_the_best_baseline(run: Path) -> None:
    result = E.evaluate_run(run, k=2, baselines=True, progress=False, grids=TINY_GRIDS)
    for r in result.rows:  # the per-user arrays are the same users and masking as the means
        assert r.per_user is not None and len(r.per_user[0]) == 18
        assert np.mean(r.per_user[0]) == pytest.approx(r.metrics["ndcg"])
        assert np.mean(r.per_user[1]) == pytest.approx(r.metrics["recall"])
        assert r.se["ndcg"] == pytest.approx(np.std(r.per_user[0], ddof=1) / np.sqrt(18))
    oracle, best = result.rows[0], max(result.rows[1:], key=lambda r: r.metrics["ndcg"])
    assert oracle.paired["vs"] == best.name and oracle.paired["n"] == 18
    assert oracle.paired["ndcg_diff"] == pytest.approx(1.0 - best.metrics["ndcg"])
    assert oracle.paired["ndcg_se"] == pytest.approx(np.std(1.0 - best.per_user[0], ddof=1) / np.sqrt(18))
    assert 0.0 <= oracle.paired["ndcg_p"] <= 1.0 and oracle.paired["recall_diff"] >= 0.0
    assert f"minus the best baseline ({best.name}), over 18 users" in (run / "eval" / "report.md").read_text()


def test_test_file_counts_unknown_ids(run: Path, tmp_path: Path) -> None:
    test = tmp_path / "test.csv"
    pd.DataFrame({"user_id": ["u00", "zz", "u01", "u01"], "item_id": [answer(0), "i01", "i99", answer(1)],
                  "rating": [5, 5, 5, 2], "timestamp": [200] * 4}).to_csv(test, index=False)
    with pytest.warns(GeotowerWarning, match="1 unknown users and 1 unknown items"):
        result = E.evaluate_run(run, k=2, test_file=test, progress=False)
    assert (result.unknown_users, result.unknown_items, result.test_rows, result.users) == (1, 1, 2, 1)
    assert result.row("geotower").metrics["recall"] == 1.0  # u00's answer; u01's row is a negative (2 - 2 = 0)


@pytest.mark.parametrize(("text", "match"), [
    ("user_id,item_id,rating,timestamp\n", "test set is empty"),
    ("user_id,item_id,rating,timestamp\nzz,i00,5,1\n", "empty after dropping"),
    ("user_id,item_id,timestamp\nu00,i00,1\n", "need them too"),
    ("user_id,item_id,rating,timestamp\nu00,i00,x,1\n", "finite number"),
    ("user_id,item_id,rating,timestamp\nu00,i00,1,1\n", "no positive"),
])
def test_bad_test_files_give_clear_errors(run: Path, tmp_path: Path, text: str, match: str) -> None:
    test = tmp_path / "test.csv"
    test.write_text(text)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GeotowerWarning)
        with pytest.raises(DataError, match=match):
            E.evaluate_run(run, k=2, test_file=test, progress=False)


def test_missing_test_file_names_it(run: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        E.evaluate_run(run, k=2, test_file=tmp_path / "nope.csv", progress=False)


@pytest.mark.parametrize(("k", "match"), [(0, "positive integer"), (-3, "positive integer"), (19, "larger than")])
def test_bad_k(run: Path, k: int, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        E.evaluate_run(run, k=k, progress=False)


def test_only_cold_test_users_is_a_clear_error(run: Path, tmp_path: Path) -> None:
    test = tmp_path / "test.csv"
    pd.DataFrame({"user_id": ["c0"], "item_id": ["i05"], "rating": [5], "timestamp": [1]}).to_csv(test, index=False)
    with pytest.raises(DataError, match="no warm test user.*1 users"):
        E.evaluate_run(run, k=2, test_file=test, progress=False)


def test_cli_json_is_last_line(run: Path) -> None:
    from geotower._cli.evaluate import evaluate

    app = typer.Typer()
    app.command("evaluate")(evaluate)
    app.command("noop")(lambda: None)  # a second command keeps "evaluate" a named sub-command
    res = CliRunner().invoke(app, ["evaluate", str(run), "--k", "2", "--json", "--quiet"])
    assert res.exit_code == 0, res.output
    last = json.loads(res.stdout.strip().splitlines()[-1])
    assert {k: last[k] for k in ("recall@2", "ndcg@2", "hitrate@2", "precision@2", "users")} == {
        "recall@2": 1.0, "ndcg@2": 1.0, "hitrate@2": 1.0, "precision@2": 0.5, "users": 18}


def test_empty_validation_uses_defaults_with_a_warning(run: Path) -> None:
    cfg = artifacts.read_json(run / "config.json")
    cfg["train"]["val_fraction"] = 0.1  # the 0.9 quantile of train times is the last one: nothing after it
    artifacts.write_json(run / "config.json", cfg)
    with pytest.warns(GeotowerWarning, match="not tuned"):
        result = E.evaluate_run(run, k=2, baselines=True, progress=False, grids=TINY_GRIDS)
    assert result.row("itemknn").params == {} and result.row("als").params == {}


def test_real_training_run_with_all_baselines(tmp_path: Path) -> None:
    """Integration with `geotower train` (save_bundle): the run and the content-only two-tower are scored alike."""
    from geotower.pipeline.train import train_run

    data = tmp_path / "data"
    items = pd.DataFrame({"item_id": [f"i{j:02d}" for j in range(N)], "lat": 60.0 + np.arange(N) / 1000,
                          "lon": 24.9 + np.arange(N) / 1000})
    write_dataset(data, make_interactions(), items, DatasetSpec())
    cfg = resolve(None, ["eval.test_fraction=0.4", "train.val_fraction=0.3", "train.epochs=1", "train.batch_size=32",
                         "model.embed_dim=8", "model.hidden_dim=16", "train.patience=0", "eval.k=2"])
    train_run(data, tmp_path / "run", cfg, progress=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*recomputed held-out split")  # same split as training
        result = E.evaluate_run(tmp_path / "run", baselines=True, progress=False, grids=TINY_GRIDS)
    assert [r.model for r in result.rows] == ["geotower", "popular", "recent", "itemknn", "rp3beta", "ease", "als",
                                              "bpr", "content_twotower"]
    assert all(r.metrics and r.metrics["users"] == 18 for r in result.rows), [r.note for r in result.rows]
    assert result.k == 2 and result.cold_users == 2
    assert (tmp_path / "run" / "baselines" / "content_twotower" / "manifest.json").exists()
    again = E.evaluate_run(tmp_path / "run", baselines=True, progress=False, grids=TINY_GRIDS)
    assert again.row("content_twotower").note.startswith("reused")
    assert again.row("content_twotower").metrics == result.row("content_twotower").metrics


def test_user_without_embedding_scores_zero_with_a_warning(run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def without_u08(path: Path, verify_data: bool = True) -> SimpleNamespace:
        b = oracle_bundle(Path(path))
        keep = b.user_ids != "u08"
        return SimpleNamespace(**{**vars(b), "user_ids": b.user_ids[keep], "user_emb": b.user_emb[keep]})

    monkeypatch.setattr(R, "load_bundle", without_u08)
    with pytest.warns(GeotowerWarning, match="1 warm test users have no saved embedding"):
        result = E.evaluate_run(run, k=2, progress=False)
    # u08 (group 1, answer i06) gets all-zero scores: ties go to the lowest unseen ids i00, i01 -> miss
    assert result.users == 18 and result.row("geotower").metrics["recall"] == pytest.approx(17 / 18)


def test_missing_run_dir(tmp_path: Path) -> None:
    with pytest.raises(GeotowerError, match="does not exist"):
        E.evaluate_run(tmp_path / "nope", progress=False)


def test_split_differing_from_training_record_warns(run: Path) -> None:
    manifest = artifacts.read_json(run / "manifest.json")
    artifacts.write_json(run / "manifest.json", {**manifest, "rows": {"train": 100, "test": 31}})
    with pytest.warns(GeotowerWarning, match="92 train / 39 test rows but training recorded 100 / 31"):
        E.evaluate_run(run, k=2, progress=False)


def test_train_on_everything_then_judge_a_later_file(tmp_path: Path) -> None:
    """eval.test_fraction=0: the run trains on every row; evaluate needs --test FILE and masks every trained row."""
    from geotower.pipeline.train import train_run

    data = tmp_path / "data"
    items = pd.DataFrame({"item_id": [f"i{j:02d}" for j in range(N)], "lat": 60.0 + np.arange(N) / 1000,
                          "lon": 24.9 + np.arange(N) / 1000})
    write_dataset(data, make_interactions(), items, DatasetSpec())
    cfg = resolve(None, ["eval.test_fraction=0", "train.val_fraction=0.3", "train.epochs=1", "train.batch_size=32",
                         "model.embed_dim=8", "train.patience=0", "eval.k=2"])
    train_run(data, tmp_path / "run", cfg, progress=False)
    manifest = artifacts.read_json(tmp_path / "run" / "manifest.json")
    assert manifest["rows"]["test"] == 0 and manifest["rows"]["train"] == len(make_interactions())
    with pytest.raises(DataError, match="trained on every interaction.*pass --test FILE"):
        E.evaluate_run(tmp_path / "run", progress=False)
    test = tmp_path / "later.csv"
    pd.DataFrame({"user_id": ["u00", "u01", "c0"], "item_id": ["i17", "i16", "i05"],
                  "rating": [5, 5, 5], "timestamp": [300] * 3}).to_csv(test, index=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*held-out rows")  # nothing was held out
        result = E.evaluate_run(tmp_path / "run", test_file=test, progress=False)
    assert result.users == 3 and result.cold_users == 0  # c0's t=100 row was trained on: c0 is warm now


def test_test_file_on_a_run_with_a_held_out_part_warns(run: Path, tmp_path: Path) -> None:
    test = tmp_path / "test.csv"
    pd.DataFrame({"user_id": ["u00"], "item_id": [answer(0)], "rating": [5], "timestamp": [200]}).to_csv(test,
                                                                                                       index=False)
    with pytest.warns(GeotowerWarning, match="trained without its 39 held-out rows"):
        E.evaluate_run(run, k=2, test_file=test, progress=False)
    with pytest.raises(ConfigError, match=r"eval.test_fraction: must be in \[0, 1\)"):
        resolve(None, ["eval.test_fraction=1"])


def test_factor_baselines_take_the_exact_embedding_path(run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model with factors is scored by evaluate_embeddings, with the same metrics its score() would give."""
    from geotower.evaluate import metrics as Mx

    cfg, _, ds = E._load_run(run)
    train, test, _ = E._holdout(ds, cfg, None)
    proto = E.build_heldout(train, test, E._all_users(ds), ds.items["item_id"].to_numpy().astype(str))
    rng = np.random.default_rng(0)
    users = rng.standard_normal((len(proto.user_ids), 4)).astype(np.float32)
    items = rng.standard_normal((N, 4)).astype(np.float32)
    model = SimpleNamespace(user_factors_=users, item_factors_=items, score=lambda b: users[b] @ items.T)
    calls: list[str] = []
    real = Mx.evaluate_embeddings
    monkeypatch.setattr(R, "evaluate_embeddings", lambda *a, **kw: calls.append("faiss") or real(*a, **kw))
    got, score_fn = R._score_baseline(model, proto, 3, False)
    assert calls == ["faiss"]
    want = Mx.evaluate_scorer(model.score, proto.users, proto.relevant, proto.seen, 3)
    assert got == pytest.approx(want) and got["users"] == 18
    np.testing.assert_allclose(score_fn(np.array([0, 2])), model.score(np.array([0, 2])))  # for the per-user pass
    del model.user_factors_  # no factors: the block path
    assert R._score_baseline(model, proto, 3, False)[0] == pytest.approx(want) and calls == ["faiss"]
