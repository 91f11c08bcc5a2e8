"""Enforces the import direction of STYLE.md: a module imports only from lower layers (or its own package).

Layers (low to high):  L0 config/errors/schema/artifacts  <  L1 ingest, geo, model, retrieve (numpy side)
<  L2 train, evaluate  <  L3 pipeline, retrieve.service/api_models  <  L4 cli, _cli.
Every import counts, including lazy ones inside functions and relative ones (resolved against the importing module).
``cli`` registers the ``_cli`` command modules.
Inside ``pipeline`` (L3) the modules form tiers too: one-stage runs (features, train, recommend) < modules that call
one of them (prepare -> features, evaluate_rows -> train for its content baseline) < evaluate, which writes those rows
< demo, which composes them all; a pipeline module never imports one of its own tier.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "geotower"

LAYER_OF_PACKAGE = {
    "__init__": 0, "config": 0, "errors": 0, "schema": 0, "artifacts": 0, "_lazy": 0,
    "ingest": 1, "geo": 1, "model": 1, "retrieve": 1,
    "train": 2, "evaluate": 2,
    "pipeline": 3, "retrieve.service": 3, "retrieve.api_models": 3,
    "cli": 4, "_cli": 4, "api": 4,
}
# the package root re-exports the public Python API (lazily, on first attribute access)
FACADE = ("__init__", "api")
PIPELINE_TIER = {"features": 0, "train": 0, "recommend": 0, "prepare": 1, "evaluate_rows": 1, "evaluate": 2, "demo": 3}
NO_TORCH = ("ingest", "geo", "retrieve.index")
SERVICE_FORBIDDEN = ("ingest", "train", "evaluate")


def _unit(module: str) -> str:
    """'geotower.retrieve.service' -> 'retrieve.service'; 'geotower.ingest.yelp' -> 'ingest'."""
    parts = module.split(".")[1:] or ["__init__"]
    two = ".".join(parts[:2])
    return two if two in LAYER_OF_PACKAGE else parts[0]


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        name = ".".join(p for p in rel.parts if p != "__init__") if rel.name == "__init__" else ".".join(rel.parts)
        out.append((name, path))
    return out


def _imports(path: Path, module: str = "") -> set[str]:
    """Absolute names of every import in ``path``; ``from .x import y`` is resolved against ``module``."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(p for p in (*parent, base) if p)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _allowed(unit: str, other: str) -> bool:
    """Same unit, a lower layer, L0 among itself, or a sibling at the same layer inside one top package."""
    lo, lt = LAYER_OF_PACKAGE[unit], LAYER_OF_PACKAGE[other]
    same_top = unit.split(".")[0] == other.split(".")[0]
    return other == unit or lt < lo or (lt == lo == 0) or (lt == lo and same_top)


def _pipeline_violation(module: str, target: str) -> str | None:
    """A pipeline module importing another of the same or a higher tier."""
    if not (module.startswith("geotower.pipeline.") and target.startswith("geotower.pipeline.")):
        return None
    mine, other = module.split(".")[2], target.split(".")[2]
    if mine != other and PIPELINE_TIER[other] >= PIPELINE_TIER[mine]:
        return f"{module} (pipeline tier {PIPELINE_TIER[mine]}) imports {target} (tier {PIPELINE_TIER[other]})"
    return None


def _violations(module: str, imports: set[str]) -> list[str]:
    unit = _unit(module)
    bad = []
    for target in imports:
        if target == "torch" or target.startswith("torch."):
            if any(unit == u or module.startswith(f"geotower.{u}") for u in NO_TORCH):
                bad.append(f"{module} imports torch")
            continue
        if not target.startswith("geotower.") or _unit(target) not in LAYER_OF_PACKAGE:
            continue
        other = _unit(target)
        if (unit, other) == FACADE:
            continue
        pipeline_bad = _pipeline_violation(module, target)
        if pipeline_bad:
            bad.append(pipeline_bad)
        elif unit == "cli" and other == "_cli":
            continue
        elif unit == "retrieve.service" and other in SERVICE_FORBIDDEN:
            bad.append(f"{module} imports {target}: the service must stay free of {', '.join(SERVICE_FORBIDDEN)}")
        elif not _allowed(unit, other):
            bad.append(f"{module} (L{LAYER_OF_PACKAGE[unit]}) imports {target} (L{LAYER_OF_PACKAGE[other]})")
    return bad


def test_every_module_has_a_layer() -> None:
    for module, _ in _modules():
        assert _unit(module) in LAYER_OF_PACKAGE, module


@pytest.mark.parametrize(("module", "path"), _modules(), ids=[m for m, _ in _modules()])
def test_imports_go_downward(module: str, path: Path) -> None:
    assert _violations(module, _imports(path, module)) == []


def test_the_checker_catches_upward_imports() -> None:
    assert _violations("geotower.ingest.yelp", {"geotower.train.loop"})
    assert _violations("geotower.ingest.yelp", {"geotower.geo.context"})
    assert _violations("geotower.geo.osm", {"torch"})
    assert _violations("geotower.retrieve.service", {"geotower.evaluate.metrics"})
    assert _violations("geotower.config", {"geotower.model.towers"})
    assert not _violations("geotower.ingest.yelp", {"geotower.ingest.dataset", "geotower.errors"})
    assert not _violations("geotower.retrieve.service", {"geotower.retrieve.index", "geotower.model.bundle"})
    assert not _violations("geotower.pipeline.evaluate", {"geotower.pipeline.train", "geotower.evaluate.metrics"})
    assert _violations("geotower.pipeline.train", {"geotower.pipeline.recommend"})
    assert _violations("geotower.pipeline.train", {"geotower.pipeline.evaluate"})
    assert not _violations("geotower.pipeline.demo", {"geotower.pipeline.evaluate"})
    assert not _violations("geotower.cli", {"geotower._cli.train"})
    # inside pipeline: one-stage runs never import each other, nor a run that composes them
    assert _violations("geotower.pipeline.features", {"geotower.pipeline.recommend"})
    assert _violations("geotower.pipeline.prepare", {"geotower.pipeline.evaluate"})
    assert _violations("geotower.pipeline.evaluate", {"geotower.pipeline.demo"})
    assert _violations("geotower.pipeline.evaluate_rows", {"geotower.pipeline.evaluate"})
    assert not _violations("geotower.pipeline.evaluate", {"geotower.pipeline.evaluate_rows"})
    assert not _violations("geotower.pipeline.prepare", {"geotower.pipeline.features"})


def test_relative_imports_are_resolved(tmp_path: Path) -> None:
    path = tmp_path / "train.py"
    path.write_text("from .recommend import recommend_run\nfrom ..train import loop\n")
    names = _imports(path, "geotower.pipeline.train")
    assert {"geotower.pipeline.recommend", "geotower.train.loop"} <= names
    assert _violations("geotower.pipeline.train", names)
    init = tmp_path / "__init__.py"
    init.write_text("from .dataset import load_dataset\n")
    assert "geotower.ingest.dataset" in _imports(init, "geotower.ingest")


def test_every_pipeline_module_has_a_tier() -> None:
    names = {p.stem for p in (SRC / "pipeline").glob("*.py") if p.stem != "__init__"}
    assert names == set(PIPELINE_TIER)


STAGES = ("ingest", "geo", "model", "train", "evaluate", "retrieve", "pipeline")


@pytest.mark.parametrize("stage", STAGES)
def test_stage_packages_list_their_public_names_and_import_nothing_up_front(stage: str) -> None:
    """``__all__`` resolves name by name; importing the package itself loads none of its modules (nor torch)."""
    import os
    import subprocess
    import sys

    code = (f"import sys, geotower.{stage} as m; "
            f"loaded = sorted(k for k in sys.modules if k.startswith('geotower.{stage}.') or k == 'torch'); "
            f"assert not loaded, loaded; assert m.__all__ == sorted(m.__all__); "
            f"[getattr(m, n) for n in m.__all__]")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(SRC.parent)})
    assert out.returncode == 0, out.stderr
