"""Shell completion for real: the script ``--show-completion`` prints, sourced into bash and driven the way bash
drives it (a shim ``geotower`` on PATH runs the sources under test), and the protocol other shells use."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cli_process import cli_argv, cli_env, run_cli

COMMANDS = ["simulate", "train", "evaluate", "index", "recommend", "serve", "demo", "prepare", "features"]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_show_completion_prints_a_script(shell: str) -> None:
    """With detection off (typer's switch for tests) the shell is named; normally it is the shell running us."""
    res = run_cli("--show-completion", shell, env=cli_env(_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION="1"))
    assert res.returncode == 0, res.stderr
    assert "_GEOTOWER_COMPLETE" in res.stdout and f"complete_{shell}" in res.stdout


@pytest.fixture
def shim_env(tmp_path: Path) -> dict[str, str]:
    """PATH with a ``geotower`` executable that runs the CLI of the sources under test."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "geotower"
    python, flag, entry = cli_argv()
    shim.write_text(f"#!/bin/sh\nexec '{python}' {flag} \"{entry}\" \"$@\"\n")
    shim.chmod(0o755)
    env = cli_env()
    return {**env, "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"}


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_sources_the_script_and_completes(shim_env: dict[str, str]) -> None:
    script = run_cli("--show-completion", "bash", env={**shim_env, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
    assert script.returncode == 0, script.stderr

    def complete(*words: str) -> list[str]:
        """The README's ``eval "$(geotower --show-completion)"``, then what bash does on TAB after ``words``."""
        body = (f'eval "$GEOTOWER_SCRIPT"\nCOMP_WORDS=({" ".join(repr(w) for w in words)})\n'
                f"COMP_CWORD={len(words) - 1}\n_geotower_completion geotower\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n")
        res = subprocess.run(["bash", "--norc", "-c", body], env={**shim_env, "GEOTOWER_SCRIPT": script.stdout},
                             capture_output=True, text=True, timeout=60, check=False)
        assert res.returncode == 0, res.stderr
        return res.stdout.split()

    assert complete("geotower", "") == COMMANDS
    assert complete("geotower", "pre") == ["prepare"]
    assert complete("geotower", "prepare", "") == ["yelp", "checkins"]
    assert complete("geotower", "prepare", "yelp", "--ci") == ["--city"]
    assert "--json" in complete("geotower", "recommend", "RUN", "--")


def test_zsh_protocol_describes_commands() -> None:
    res = run_cli(env=cli_env(_GEOTOWER_COMPLETE="complete_zsh", _TYPER_COMPLETE_ARGS="geotower pre"))
    assert res.returncode == 0 and '"prepare":"Turn raw data into a dataset folder."' in res.stdout
