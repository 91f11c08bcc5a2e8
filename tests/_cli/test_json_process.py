"""``--json`` through real file descriptors: a child process's stdout is one JSON line even for writes that bypass
``sys.stdout``; ``serve --json`` prints its startup document, then serves."""

from __future__ import annotations

import json
import selectors
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from cli_process import cli_argv, cli_env, run_cli

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS / "retrieve"))
from retrieve_fakes import make_tiny_run  # noqa: E402


def test_prepare_yelp_stdout_is_one_json_line(tmp_path: Path) -> None:
    yelp = TESTS / "fixtures" / "yelp"
    res = run_cli("prepare", "yelp", "--business", str(yelp / "business.json"), "--reviews",
                  str(yelp / "review.json"), "--out", str(tmp_path / "ds"), "--json")
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("\n") == 1 and json.loads(res.stdout)["businesses_kept"] == 7
    assert "7 of 11 businesses" in res.stderr  # the human summary, moved to stderr


def test_stdout_to_stderr_moves_descriptor_writes(tmp_path: Path) -> None:
    """os.write(1, ...) and a child process inside the block land on stderr; emit_json reaches stdout."""
    code = ("import os, subprocess, sys\n"
            "from geotower._cli.options import emit_json, stdout_to_stderr, stdout_restored\n"
            "with stdout_to_stderr():\n"
            "    os.write(1, b'fd-write\\n'); print('py-print')\n"
            "    subprocess.run([sys.executable, '-c', 'print(\"child\")'], check=True)\n"
            "    emit_json({'a': 1})\n"
            "    with stdout_restored():\n"
            "        subprocess.run([sys.executable, '-c', 'print(\"restored\")'], check=True)\n"
            "    print('py-again')\n")
    res = subprocess.run([sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True, timeout=60,
                         check=False)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ['{"a": 1}', "restored"]
    assert res.stderr.split() == ["fd-write", "py-print", "child", "py-again"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _first_line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    if not sel.select(timeout):
        raise AssertionError(f"no line on stdout within {timeout} s")
    return proc.stdout.readline()


def test_serve_json_prints_startup_line_then_serves(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
                                                     ) -> None:
    run = Path(shutil.copytree(make_tiny_run(tmp_path_factory.getbasetemp() / "tiny-real-run"), tmp_path / "run"))
    port = _free_port()
    with open(tmp_path / "stderr.txt", "w") as err:
        proc = subprocess.Popen(cli_argv("serve", str(run), "--port", str(port), "--json"), env=cli_env(),
                                stdout=subprocess.PIPE, stderr=err, text=True)
        try:
            doc = json.loads(_first_line(proc, 90))
            assert doc["url"] == f"http://127.0.0.1:{port}/" and doc["run"] == str(run)
            assert doc["items"] == 40 and doc["index"] and doc["index_file"] is None
            health = None
            for _ in range(100):
                try:
                    with urllib.request.urlopen(doc["url"] + "health", timeout=5) as r:
                        health = json.load(r)
                    break
                except OSError:
                    time.sleep(0.2)
            assert health is not None and health["items"] == 40
        finally:
            proc.terminate()
            rest, _ = proc.communicate(timeout=30)
    assert rest == ""  # uvicorn's log and access log went to stderr
    assert "GET /health" in (tmp_path / "stderr.txt").read_text()
