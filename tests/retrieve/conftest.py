"""Fixtures of the retrieval tests: the known-answer run of ``retrieve_fakes`` in a temporary run folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from retrieve_fakes import FakeBundle, make_bundle


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    path = tmp_path / "run"
    path.mkdir()
    return path


@pytest.fixture
def bundle(run_dir: Path) -> FakeBundle:
    return make_bundle(run_dir)


@pytest.fixture
def loader(bundle: FakeBundle):
    return lambda _run_dir: bundle
