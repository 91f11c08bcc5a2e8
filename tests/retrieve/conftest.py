"""Fixtures of the retrieval tests: the known-answer run of ``retrieve_fakes`` in a temporary run folder."""

from __future__ import annotations

from retrieve_fakes import bundle, loader, run_dir

__all__ = ["bundle", "loader", "run_dir"]  # pytest fixtures, defined beside the fakes they serve
