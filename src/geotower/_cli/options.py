"""Option types and small parsers shared by the command modules."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from geotower.config import RunConfig, resolve
from geotower.errors import ConfigError

__all__ = ["ConfigOpt", "QuietOpt", "RunArg", "SetOpt", "parse_bbox", "parse_ids", "run_config"]

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML config file.")]
SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", help="Override one config key, e.g. --set train.epochs=5 (repeatable).")]
QuietOpt = Annotated[bool, typer.Option("--quiet", help="No progress bars.")]
RunArg = Annotated[Path, typer.Argument(help="Run folder written by 'geotower train'.")]


def run_config(config: Path | None, set_: list[str] | None) -> RunConfig:
    """The one precedence rule (``--set`` > ``--config`` > defaults), see :func:`geotower.config.resolve`."""
    return resolve(config, set_ or ())


def parse_bbox(text: str | None) -> tuple[float, float, float, float] | None:
    """``minlon,minlat,maxlon,maxlat`` → floats; anything else is a ConfigError naming the flag."""
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or values[0] > values[2] or values[1] > values[3]:
        raise ConfigError(f"--bbox {text!r}: expected minlon,minlat,maxlon,maxlat with min <= max")
    return values[0], values[1], values[2], values[3]


def parse_ids(text: str | None) -> tuple[str, ...]:
    """``ID,ID,...`` → a tuple of the non-empty ids."""
    return tuple(s.strip() for s in text.split(",") if s.strip()) if text else ()
