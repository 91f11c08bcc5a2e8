"""Run the geotower CLI of the sources under test in a child process (real file descriptors, real env vars)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import geotower

ENTRY = "from geotower.cli import app; app(prog_name='geotower')"


def cli_env(**extra: str) -> dict[str, str]:
    """The environment with ``PYTHONPATH`` at the geotower being tested (not whatever is installed)."""
    src = str(Path(geotower.__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]), **extra}


def cli_argv(*args: str) -> list[str]:
    return [sys.executable, "-c", ENTRY, *args]


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120, **kw: Any
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli_argv(*args), env=env or cli_env(), capture_output=True, text=True, timeout=timeout,
                          check=False, **kw)
