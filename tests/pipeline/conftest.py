"""Fixtures of the pipeline tests: the retrieval tests' known-answer run (``run_dir``, ``bundle``, ``loader``) for
test_recommend.py, from tests/retrieve/retrieve_fakes.py, where they are defined beside the fakes they serve."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "retrieve"))
from retrieve_fakes import bundle, loader, run_dir  # noqa: E402

__all__ = ["bundle", "loader", "run_dir"]
