"""scripts/check_keeps_torch.sh: ``pip install .`` beside a different torch 2.x keeps it (issue #14), and the check
fails when the installed torch does not satisfy geotower's range. Needs the package index and about 40 s per case,
so it runs only with GEOTOWER_NETWORK_TESTS=1 (not in the default test run); the stub torch (metadata only) avoids
a torch download."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "check_keeps_torch.sh"
pytestmark = pytest.mark.skipif(not os.environ.get("GEOTOWER_NETWORK_TESTS") or shutil.which("bash") is None,
                                reason="needs the package index: set GEOTOWER_NETWORK_TESTS=1")


def _check(spec: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), spec], capture_output=True, text=True, timeout=600, check=False)


def test_a_cuda_torch_in_range_is_kept() -> None:
    res = _check("stub:2.4.0+cu121")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "OK: torch is not in the install set" in res.stdout and "torch kept: 2.4.0+cu121" in res.stdout


def test_a_torch_below_the_range_would_be_replaced() -> None:
    res = _check("stub:2.2.0")
    assert res.returncode != 0 and "FAIL: pip would replace the venv's torch" in res.stdout + res.stderr
