"""Typed run configuration: one frozen dataclass per stage, composed into :class:`RunConfig`.

Precedence lives in one place, :func:`resolve`: ``--set`` overrides > ``--config`` TOML file > defaults.
Unknown keys and wrongly typed values raise :class:`ConfigError` naming the key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from geotower.errors import ConfigError


@dataclass(frozen=True)
class DataConfig:
    """How the dataset folder is read."""

    strict: bool = False  # unknown users/items in interactions: error instead of drop + warning
    nan_policy: str = "error"  # NaN/inf numeric features: "error" or "impute" (median, with a warning)


@dataclass(frozen=True)
class FeaturesConfig:
    """OSM context features and the encoding of coordinates."""

    radii: tuple[int, ...] = (100, 200, 500)
    mode: str = "clipped"  # "clipped" (part inside the buffer) or "whole" (original definition)
    layers: tuple[str, ...] = ()  # empty = all 11 layers
    geo_encoding: str = "grid"  # "grid" (multi-resolution cell embeddings), "rff", or "none"
    grid_cells_m: tuple[float, ...] = (250.0, 1000.0, 4000.0)  # grid cell sizes for geo_encoding="grid"


@dataclass(frozen=True)
class ModelConfig:
    """Tower sizes and which inputs each tower sees."""

    embed_dim: int = 128
    hidden_dim: int = 512
    n_layers: int = 0  # hidden ReLU layers of hidden_dim per tower; 0 = linear towers, measured best on both real
    # data sets (docs/quality.md); the original design is 1
    dropout: float = 0.0
    use_item_id: bool = True  # learned item-ID embedding added to the item tower
    use_user_id: bool = True  # learned user-ID embedding added to the user tower
    use_item_features: bool = True
    use_history: bool = True  # user tower pools the item-tower inputs of the user's train positives
    id_dropout: float = 0.1  # probability of zeroing ID embeddings in training (keeps the feature path good)
    normalize: bool = True  # L2-normalise both towers' outputs; score = cosine / temperature
    temperature: float = 0.2  # measured best of {0.05, 0.1, 0.2, 0.5} on both real data sets (docs/quality.md)
    cell_dim: int = 64  # embedding size of each geo grid level (features.geo_encoding="grid"); 64 measured above 32
    # on Singapore (docs/quality.md)
    history_weighted: bool = False  # pool the history with confidence weights instead of a plain mean
    item_bias: bool = False  # learned per-item score offset (initialised at the smoothed log-popularity)
    members: int = 3  # ensemble: train this many towers from different seeds and average their scores (one dot
    # product over concatenated embeddings); extra members are trained like the refit, for the chosen epoch count.
    # 3 measured +0.01 NDCG@10 on ML-100K and Singapore over 1 (docs/quality.md); 1 = a single model, ~1.7x faster
    trend_half_lives_days: tuple[float, ...] = (0.5, 2.0, 8.0)  # time-decayed popularity prior, one learned weight
    # per half-life (geotower.model.trend); used when the interactions have timestamps; () = off. Short on purpose:
    # all-time popularity is the item-ID embedding's job (longer half-lives measured worse, docs/quality.md)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, loss and negative sampling."""

    lr: float = 1e-3
    weight_decay: float = 1e-5
    epochs: int = 30
    batch_size: int = 2048
    loss: str = "softmax"  # "bce", "bpr" or "softmax" (in-batch, logQ-corrected)
    n_negatives: int = 1  # per positive for bce/bpr; extra uniform negatives for softmax
    logq_correction: bool = True
    hard_negative_ratio: float = 0.0  # share of sampled negatives drawn near the positive (geo-hard)
    hard_negative_km: float = 1.0
    val_fraction: float = 0.1  # validation carved from train (temporal when timestamps exist)
    patience: int = 5  # early stopping on validation NDCG@k; 0 disables
    threads: int = 0  # torch.set_num_threads; 0 = leave torch's default
    device: str = "cpu"
    history_leave_one_out: bool = True  # drop the target item from its own history bag while training
    refit: bool = True  # after early stopping, retrain on ALL training rows (validation included) for the best
    # number of epochs: the latest interactions (the temporal validation part) then shape the weights too
    confidence: str = "linear"  # loss weight from the interactions' weight column: "linear" (as is), "log1p"
    # (1 + log(1 + w) damps heavy repeat visitors) or "none" (every pair counts once)
    calibrate_trend: bool = False  # after early stopping, refit the trend prior's weights on the validation rows
    # (later in time than the training rows) and keep them fixed in the refit (measured worse than learning them
    # jointly with the short default half-lives on ML-100K, docs/quality.md)
    full_softmax_max_items: int = 50_000  # softmax over the WHOLE catalogue up to this many items (exact, no
    # sampling bias, so no logQ needed); larger catalogues use in-batch negatives + logQ. 0 = always in-batch


@dataclass(frozen=True)
class EvalConfig:
    """Held-out protocol and metrics."""

    k: int = 10
    test_fraction: float = 0.2  # global temporal split at the (1 - test_fraction) quantile of timestamps; 0 = train on
    # every interaction (then `geotower evaluate --test FILE` judges later interactions you hold elsewhere)
    baselines: tuple[str, ...] = ("popular", "itemknn", "als", "bpr", "content_twotower")


@dataclass(frozen=True)
class ServeConfig:
    """Service and index settings."""

    host: str = "127.0.0.1"
    port: int = 8000
    index_kind: str = "auto"  # "auto", "flat", "hnsw" or "ivf"
    exact_max_items: int = 50_000  # "auto" uses exact search up to this many items
    allowed_hosts: tuple[str, ...] = ()  # Host names served besides the bound host and loopback (DNS rebinding)


# Named ``--set`` override lists. "original_content" reproduces the original content two-tower exactly (see
# geotower.model.towers): content features only, user = MLP(mean of the standardised features of the user's positive
# items), no IDs, BPR, one 512-unit hidden layer to 128-d outputs, raw dot products.
PRESETS: dict[str, tuple[str, ...]] = {
    "original_content": (
        "model.use_item_id=false", "model.use_user_id=false", "model.use_history=false", "model.normalize=false",
        "model.id_dropout=0.0", "model.n_layers=1", "model.hidden_dim=512", "model.embed_dim=128",
        'train.loss="bpr"', "train.history_leave_one_out=false", 'features.geo_encoding="none"',
        "model.trend_half_lives_days=[]", "model.members=1",
    ),
}


@dataclass(frozen=True)
class RunConfig:
    """Everything one run needs; written beside every output as ``config.json``."""

    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


_CHOICES: dict[str, tuple[Any, ...]] = {
    "data.nan_policy": ("error", "impute"),
    "features.mode": ("clipped", "whole"),
    "features.geo_encoding": ("grid", "rff", "none"),
    "train.loss": ("bce", "bpr", "softmax"),
    "train.confidence": ("linear", "log1p", "none"),
    "serve.index_kind": ("auto", "flat", "hnsw", "ivf"),
}
_POSITIVE = {
    "model.embed_dim", "model.hidden_dim", "train.lr", "train.epochs", "train.batch_size",
    "eval.k", "model.temperature", "features.radii", "features.grid_cells_m", "train.hard_negative_km",
    "model.cell_dim", "model.trend_half_lives_days", "model.members",
}
_NON_NEGATIVE = {"seed", "model.n_layers", "train.weight_decay", "train.n_negatives", "train.patience",
                 "train.threads", "train.full_softmax_max_items", "serve.exact_max_items"}
_PORT = "serve.port"
_FRACTIONS = {"model.dropout", "model.id_dropout", "train.hard_negative_ratio"}
_OPEN_FRACTIONS = {"train.val_fraction"}
_HALF_OPEN_FRACTIONS = {"eval.test_fraction"}  # 0 = no held-out part: train on everything, judge with --test FILE


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


def validate(cfg: RunConfig) -> None:
    """Range and choice checks that types alone cannot express."""
    flat = _flatten(cfg.to_dict())
    for key, choices in _CHOICES.items():
        if flat[key] not in choices:
            raise ConfigError(f"{key}: {flat[key]!r} is not one of {', '.join(map(str, choices))}")
    for key in _POSITIVE:
        values = flat[key] if isinstance(flat[key], list) else [flat[key]]
        if any(v <= 0 for v in values):
            raise ConfigError(f"{key}: must be > 0, got {flat[key]!r}")
    for key in _NON_NEGATIVE:
        if key in flat and flat[key] < 0:
            raise ConfigError(f"{key}: must be >= 0, got {flat[key]!r}")
    if _PORT in flat and not 1 <= flat[_PORT] <= 65535:
        raise ConfigError(f"{_PORT}: must be a TCP port in 1..65535, got {flat[_PORT]!r}")
    for key in _FRACTIONS:
        if not 0.0 <= flat[key] <= 1.0:
            raise ConfigError(f"{key}: must be in [0, 1], got {flat[key]!r}")
    for key in _OPEN_FRACTIONS:
        if not 0.0 < flat[key] < 1.0:
            raise ConfigError(f"{key}: must be in (0, 1), got {flat[key]!r}")
    for key in _HALF_OPEN_FRACTIONS:
        if not 0.0 <= flat[key] < 1.0:
            raise ConfigError(f"{key}: must be in [0, 1), got {flat[key]!r}")
    from geotower.schema import LAYER_BY_NAME

    unknown = [name for name in cfg.features.layers if name not in LAYER_BY_NAME]
    if unknown:
        raise ConfigError(f"features.layers: unknown {unknown}; allowed: {', '.join(LAYER_BY_NAME)}")
    _validate_combinations(cfg)


def _validate_combinations(cfg: RunConfig) -> None:
    """Checks that involve more than one key."""
    if cfg.train.device not in ("auto", "cpu") and not cfg.train.device.startswith("cuda"):
        raise ConfigError(f"train.device: expected \"auto\", \"cpu\" or \"cuda\", got {cfg.train.device!r}")
    if cfg.train.n_negatives < 0 or cfg.model.n_layers < 0 or cfg.train.patience < 0 or cfg.train.threads < 0:
        raise ConfigError("train.n_negatives, model.n_layers, train.patience and train.threads must be >= 0")
    if cfg.train.loss == "bpr" and cfg.train.n_negatives < 1:
        raise ConfigError("train.n_negatives: the bpr loss needs at least 1 negative per positive")
    if not (cfg.model.use_item_features or cfg.model.use_item_id):
        raise ConfigError("model: the item tower needs model.use_item_features or model.use_item_id")


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


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
            raw = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: invalid TOML: {exc}") from None
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


def replace(cfg: RunConfig, section: str, **changes: Any) -> RunConfig:
    """Copy of ``cfg`` with some keys of one section changed (validated)."""
    new = dataclasses.replace(cfg, **{section: dataclasses.replace(getattr(cfg, section), **changes)})
    validate(new)
    return new


