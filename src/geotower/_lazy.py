"""Lazy re-exports for the stage packages: ``geotower.ingest.load_dataset`` imports ``ingest.dataset`` on first use.

A stage package lists its public names in ``__all__`` but imports nothing up front, so ``import geotower.geo`` costs
what it did before (no shapely, no torch) and one stage never pulls in another's dependencies by accident.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_exports(package: str, homes: Mapping[str, tuple[str, ...]]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` (PEP 562) for ``package``.

    Args:
        package: the package's ``__name__``.
        homes: submodule name -> the public names it holds.

    Returns:
        ``__getattr__(name)``: a public name from its submodule (imported then), or the submodule itself.
    """
    where = {name: module for module, names in homes.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name in where:
            return getattr(import_module(f"{package}.{where[name]}"), name)
        if name in homes:
            return import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
