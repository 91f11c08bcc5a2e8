"""The one typed run configuration (``from geotower.config import RunConfig, resolve``).

:mod:`~geotower.config.sections` holds the dataclasses and their checks (:func:`validate`);
:mod:`~geotower.config.loading` turns files, plain values and ``--set`` overrides into a validated :class:`RunConfig`
(:func:`resolve`) and back (:func:`to_toml`). Both import only the standard library, so the package loads them up
front.
"""

from __future__ import annotations

from geotower.config.loading import from_dict, resolve, to_toml, with_overrides
from geotower.config.sections import (
    PRESETS,
    DataConfig,
    EvalConfig,
    FeaturesConfig,
    ModelConfig,
    RunConfig,
    ServeConfig,
    TrainConfig,
    check_port,
    replace,
    validate,
)

__all__ = [
    "PRESETS", "DataConfig", "EvalConfig", "FeaturesConfig", "ModelConfig", "RunConfig", "ServeConfig", "TrainConfig",
    "check_port", "from_dict", "replace", "resolve", "to_toml", "validate", "with_overrides",
]
