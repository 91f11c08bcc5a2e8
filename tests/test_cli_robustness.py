"""Every bad option or path is ``error: <one line>`` and exit 1, never a traceback (issue #13, "26 cases"), plus a
hypothesis fuzz of ``--set`` values and ``prepare yelp`` options through the real Typer app."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from geotower.cli import app

FIXTURES = Path(__file__).parent / "fixtures"
BIZ, REV = FIXTURES / "yelp" / "business.json", FIXTURES / "yelp" / "review.json"


def _invoke(args: list[str]):
    return CliRunner().invoke(app, args)


def _assert_one_line_error(res, needle: str = "") -> None:
    assert res.exit_code == 1, (res.exit_code, res.output, res.exception)
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    lines = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in res.output, res.output
    assert needle in lines[0], lines[0]


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_dir").mkdir()
    return tmp_path


def _prepare(out: Path, *extra: str) -> list[str]:
    return ["prepare", "yelp", "--business", str(BIZ), "--reviews", str(REV), "--out", str(out), *extra]


@pytest.mark.parametrize(("extra", "needle"), [
    (["--bbox", "nan,nan,nan,nan"], "--bbox"),
    (["--bbox", "inf,0,1,1"], "--bbox"),
    (["--memory-limit", "abc"], "--memory-limit"),
    (["--threads", "-1"], "--threads"),
    (["--set", "seed=-1"], "seed"),
    (["--set", "train.weight_decay=-1"], "train.weight_decay"),
    (["--set", "train.lr=nan"], "train.lr"),
])
def test_prepare_bad_options(files: Path, extra: list[str], needle: str) -> None:
    _assert_one_line_error(_invoke(_prepare(files / "out", *extra)), needle)
    assert not (files / "out").exists()


def test_output_paths_that_are_files(files: Path) -> None:
    _assert_one_line_error(_invoke(_prepare(files / "a_file")), "is an existing file")
    _assert_one_line_error(_invoke(_prepare(files / "a_file" / "sub")), "is a file")
    _assert_one_line_error(_invoke(["simulate", "--places", str(files / "a_file"), "--out", str(files / "a_file"),
                                    "--reviews", "10"]), "is an existing file")
    _assert_one_line_error(_invoke(["train", str(files / "a_dir"), "--out", str(files / "a_file")]),
                           "is an existing file")


def test_input_paths_of_the_wrong_kind(files: Path) -> None:
    _assert_one_line_error(_invoke(["prepare", "yelp", "--business", str(files / "a_dir"), "--reviews", str(REV),
                                    "--out", str(files / "o")]), "is a folder")
    _assert_one_line_error(_invoke(["train", str(files / "a_file"), "--out", str(files / "o")]), "is a file")
    _assert_one_line_error(_invoke(["train", str(files / "a_dir"), "--out", str(files / "o"), "--config",
                                    str(files / "a_dir")]), "is a folder")
    _assert_one_line_error(_invoke(["evaluate", str(files / "a_dir")]), "")
    _assert_one_line_error(_invoke(["recommend", str(files / "nope")]), "does not exist")


def test_train_into_its_own_dataset_is_refused(files: Path) -> None:
    data = files / "ds"
    assert _invoke(_prepare(data)).exit_code == 0
    before = {p.name: p.read_bytes() for p in data.iterdir()}
    _assert_one_line_error(_invoke(["train", str(data), "--out", str(data)]), "overlaps the input")
    assert {p.name: p.read_bytes() for p in data.iterdir()} == before


def test_dataset_toml_type_errors_through_the_cli(files: Path) -> None:
    data = files / "ds"
    assert _invoke(_prepare(data)).exit_code == 0
    (data / "complete.json").unlink()  # edited on purpose, as the recovery hint says
    for text, needle in (('[interactions]\nrating_offset = "two"\n', "rating_offset"),
                         ("[items]\nmulti_label = 5\n", "multi_label"),
                         ('[items]\ncategorical = "categories"\n', "categorical")):
        (data / "dataset.toml").write_text(text)
        _assert_one_line_error(_invoke(["train", str(data), "--out", str(files / "run")]), needle)


_values = st.one_of(st.sampled_from(["nan", "inf", "-inf", "1e400", "-1", "0", "abc", '"x"', "[1,", "true", "[]",
                                     "1e30", "-1e300", "{}", "'\\udc80'"]),
                    st.integers(-10**12, 10**12).map(str), st.text(max_size=5))
_keys = st.sampled_from(["seed", "train.lr", "train.epochs", "train.weight_decay", "train.threads",
                         "train.batch_size", "model.embed_dim", "model.dropout", "eval.k", "eval.test_fraction",
                         "serve.port", "features.radii", "train.loss", "nope", "train.nope", "train"])


@given(key=_keys, value=_values)
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_fuzz_set_values_never_traceback(tmp_path_factory: pytest.TempPathFactory, key: str, value: str) -> None:
    out = tmp_path_factory.mktemp("fz") / "run"
    res = _invoke(["train", str(tmp_path_factory.getbasetemp() / "no-such-data"), "--out", str(out),
                   "--set", f"{key}={value}"])
    assert res.exit_code == 1, (key, value, res.output, res.exception)
    assert res.exception is None or isinstance(res.exception, SystemExit), (key, value, repr(res.exception))
    assert not out.exists()


@given(bbox=st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr),
                               st.sampled_from(["", "x", "1e400"])), min_size=0, max_size=5),
       memory=st.sampled_from(["1GB", "abc", "", "-1GB", "1e9", "512 MB"]),
       threads=st.one_of(st.none(), st.integers(-5, 5)))
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_fuzz_prepare_options_never_traceback(tmp_path_factory: pytest.TempPathFactory, bbox: list[str],
                                              memory: str, threads: int | None) -> None:
    out = tmp_path_factory.mktemp("fp") / "ds"
    args = _prepare(out, "--bbox", ",".join(bbox), "--memory-limit", memory)
    if threads is not None:
        args += ["--threads", str(threads)]
    res = _invoke(args)
    assert res.exit_code in (0, 1, 2), res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    if res.exit_code != 0:
        assert not out.exists()


@pytest.mark.parametrize("port", ["70000", "0", "-1"])
def test_serve_bad_port(files: Path, port: str) -> None:
    _assert_one_line_error(_invoke(["serve", str(files / "a_dir"), "--port", port]), "--port")


def test_a_peer_rank_whose_collective_broke_prints_one_line(monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """`train --nproc 2`: when rank 0 stops on a bad setting, rank 1's broken barrier is one line, not a traceback."""
    import typer

    from geotower.cli import _guard

    def broken_barrier() -> None:
        raise RuntimeError("[../gloo/transport/tcp/pair.cc:534] Connection closed by peer\nmore detail")

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(typer.Exit):
        _guard(broken_barrier)()
    err = capsys.readouterr().err
    assert err.startswith("error: rank 1 stopped: another training process failed") and err.count("\n") == 1
    monkeypatch.setenv("RANK", "0")  # rank 0 (or a single process) keeps real bugs visible
    with pytest.raises(RuntimeError):
        _guard(broken_barrier)()
