"""Loading a :class:`RunConfig`: plain values -> typed, ``--set`` overrides, the TOML file, and back to TOML.

Precedence lives in one place, :func:`resolve`: ``--set`` overrides > ``--config`` TOML file > defaults.
Unknown keys and wrongly typed values raise :class:`ConfigError` naming the key and what is allowed.
"""

from __future__ import annotations

import json
import math
import tomllib
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any

from geotower.config.sections import RunConfig, validate
from geotower.errors import ConfigError


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Check ``value`` against the field's type hint; ints are accepted for floats, lists for tuples."""
    origin = typing.get_origin(hint)
    if origin is tuple:
        (inner, _) = typing.get_args(hint)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list of {inner.__name__}, got {value!r}")
        return tuple(_coerce(key, v, inner) for v in value)
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ConfigError(f"{key}: must be a finite number, got {value!r}")
        return float(value)
    if hint is bool and isinstance(value, bool):
        return value
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is str and isinstance(value, str):
        return value
    raise ConfigError(f"{key}: expected {hint.__name__}, got {type(value).__name__} {value!r}")


def _section_from(name: str, cls: type, values: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    allowed = [f.name for f in fields(cls)]
    out = {}
    for key, value in values.items():
        if key not in allowed:
            raise ConfigError(f"unknown key {name}.{key}; allowed keys in [{name}]: {', '.join(allowed)}")
        out[key] = _coerce(f"{name}.{key}", value, hints[key])
    return cls(**out)


def from_dict(raw: dict[str, Any]) -> RunConfig:
    """Build and validate a :class:`RunConfig` from nested plain values (TOML/JSON shape)."""
    sections = {f.name: f for f in fields(RunConfig)}
    kwargs: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in sections:
            raise ConfigError(f"unknown key {name!r}; allowed: {', '.join(sections)}")
        if name == "seed":
            kwargs["seed"] = _coerce("seed", value, int)
            continue
        if not isinstance(value, dict):
            raise ConfigError(f"[{name}] must be a table of keys, got {value!r}")
        section_cls = typing.get_type_hints(RunConfig)[name]
        kwargs[name] = _section_from(name, section_cls, value)
    cfg = RunConfig(**kwargs)
    validate(cfg)
    return cfg


def _parse_override(text: str) -> tuple[list[str], Any]:
    """``section.key=value`` → (["section", "key"], value); value parsed as a TOML literal, else a string."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected section.key=value")
    key, raw = text.split("=", 1)
    path = key.strip().split(".")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return path, value


def resolve(config_file: str | Path | None = None, overrides: typing.Sequence[str] = ()) -> RunConfig:
    """The one precedence rule: ``overrides`` > ``config_file`` > defaults.

    Raises:
        ConfigError: unreadable file, unknown key, wrong type or out-of-range value.
    """
    raw: dict[str, Any] = {}
    if config_file is not None:
        path = Path(config_file)
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except IsADirectoryError:
            raise ConfigError(f"config file {path} is a folder; give the .toml file") from None
        except (PermissionError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {path} cannot be read: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: invalid TOML: {exc}") from None
    return with_overrides(raw, overrides)


def with_overrides(raw: dict[str, Any], overrides: typing.Sequence[str]) -> RunConfig:
    """The config of nested plain values ``raw`` (not modified) with ``section.key=value`` overrides applied."""
    raw = {name: dict(value) if isinstance(value, dict) else value for name, value in raw.items()}
    for text in overrides:
        keys, value = _parse_override(text)
        node = raw
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {text!r}: {k!r} is not a section")
        node[keys[-1]] = value
    return from_dict(raw)


def to_toml(cfg: RunConfig) -> str:
    """TOML text that :func:`resolve` reads back to the same config."""
    lines = [f"seed = {cfg.seed}"]
    for name, section in cfg.to_dict().items():
        if not isinstance(section, dict):
            continue
        lines.append(f"\n[{name}]")
        lines.extend(f"{k} = {json.dumps(v)}" for k, v in section.items())
    return "\n".join(lines) + "\n"
