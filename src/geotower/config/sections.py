"""The typed run configuration: one frozen dataclass per stage, composed into :class:`RunConfig`, and its checks.

What a value may be lives beside the field (metadata read by :func:`validate`), so a new key states its own range;
reading files and ``--set`` overrides is :mod:`geotower.config.loading`.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field, fields
from typing import Any

from geotower.errors import ConfigError

# Allowed values, as field metadata checked by :func:`validate` (every element of a tuple field is checked).
POSITIVE: dict[str, Any] = {"range": (0.0, None, False, False)}  # > 0
NON_NEGATIVE: dict[str, Any] = {"range": (0.0, None, True, False)}  # >= 0
FRACTION: dict[str, Any] = {"range": (0.0, 1.0, True, True)}  # [0, 1]
OPEN_FRACTION: dict[str, Any] = {"range": (0.0, 1.0, False, False)}  # (0, 1)
HALF_OPEN_FRACTION: dict[str, Any] = {"range": (0.0, 1.0, True, False)}  # [0, 1): 0 = no held-out part
PORT: dict[str, Any] = {"range": (1.0, 65535.0, True, True), "what": "a TCP port in 1..65535"}


def CHOICES(*allowed: str) -> dict[str, Any]:  # noqa: N802 - reads like the constants above
    return {"choices": allowed}


@dataclass(frozen=True)
class DataConfig:
    """How the dataset folder is read."""

    strict: bool = False  # unknown users/items in interactions: error instead of drop + warning
    # NaN/inf numeric features: "error" or "impute" (median, with a warning)
    nan_policy: str = field(default="error", metadata=CHOICES("error", "impute"))


@dataclass(frozen=True)
class FeaturesConfig:
    """OSM context features and the encoding of coordinates."""

    radii: tuple[int, ...] = field(default=(100, 200, 500), metadata=POSITIVE)
    # "clipped" (part inside the buffer) or "whole" (original definition)
    mode: str = field(default="clipped", metadata=CHOICES("clipped", "whole"))
    layers: tuple[str, ...] = ()  # empty = all 11 layers
    # "grid" (multi-resolution cell embeddings), "rff", or "none"
    geo_encoding: str = field(default="grid", metadata=CHOICES("grid", "rff", "none"))
    # grid cell sizes for geo_encoding="grid"
    grid_cells_m: tuple[float, ...] = field(default=(250.0, 1000.0, 4000.0), metadata=POSITIVE)


@dataclass(frozen=True)
class ModelConfig:
    """Tower sizes and which inputs each tower sees."""

    embed_dim: int = field(default=128, metadata=POSITIVE)
    hidden_dim: int = field(default=512, metadata=POSITIVE)
    # hidden ReLU layers of hidden_dim per tower; 0 = linear towers, measured best on both real data sets
    # (docs/quality.md); the original design is 1
    n_layers: int = field(default=0, metadata=NON_NEGATIVE)
    dropout: float = field(default=0.0, metadata=FRACTION)
    use_item_id: bool = True  # learned item-ID embedding added to the item tower
    use_user_id: bool = True  # learned user-ID embedding added to the user tower
    use_item_features: bool = True
    # the user tower also pools the item-ID embeddings of the user's train positives (it always pools their features
    # and grid cells); off measured level on all three real data sets, with 1.8x cheaper Singapore steps
    # (docs/quality.md, seventh round)
    use_history: bool = False
    # probability of zeroing ID embeddings in training (keeps the feature path good)
    id_dropout: float = field(default=0.1, metadata=FRACTION)
    normalize: bool = True  # L2-normalise both towers' outputs; score = cosine / temperature
    # measured best of {0.05, 0.1, 0.2, 0.5} on both real data sets (docs/quality.md) embedding size of each geo grid
    # level (features.geo_encoding="grid"); 64 measured above 32 on Singapore (docs/quality.md)
    temperature: float = field(default=0.2, metadata=POSITIVE)
    cell_dim: int = field(default=64, metadata=POSITIVE)
    history_weighted: bool = False  # pool the history with confidence weights instead of a plain mean
    item_bias: bool = False  # learned per-item score offset (initialised at the smoothed log-popularity)
    # ensemble: train this many towers from different seeds and average their scores (one dot product over concatenated
    # embeddings); extra members are trained like the refit, for the chosen epoch count. 2 measured above 1 on all
    # three real data sets (+0.002 to +0.009 NDCG@10, docs/quality.md "Fourth sweep") for the cost of one more refit
    members: int = field(default=2, metadata=POSITIVE)
    # snapshot members: each refit model (and extra member) trains snapshots // 2 epochs past the chosen count E and
    # contributes its weights after each of its last `snapshots` epochs (3: after E - 1, E and E + 1), as members of
    # the same averaged ensemble; 1 = its final weights only (docs/quality.md, eighth round)
    snapshots: int = field(default=1, metadata=POSITIVE)
    # time-decayed popularity prior, one learned weight per half-life (geotower.model.trend); used when the interactions
    # have timestamps; () = off. Short on purpose: all-time popularity is the item-ID embedding's job (longer half-lives
    # measured worse, docs/quality.md)
    trend_half_lives_days: tuple[float, ...] = field(default=(0.5, 2.0, 8.0), metadata=POSITIVE)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, loss and negative sampling."""

    # with batch 512 and 1 member: peaks after ~2 epochs; docs/quality.md "Fast defaults"
    lr: float = field(default=1e-2, metadata=POSITIVE)
    # 1e-3 with the fixed budget below: ahead of 1e-5..3e-4 on the means of five member-seed pairs on all three
    # shared sets (docs/quality.md "Ninth round")
    weight_decay: float = field(default=1e-3, metadata=NON_NEGATIVE)
    # the fixed budget (early_stopping false); with early stopping, the most epochs it may train
    epochs: int = field(default=3, metadata=POSITIVE)
    batch_size: int = field(default=512, metadata=POSITIVE)
    # "bce", "bpr" or "softmax" (in-batch, logQ-corrected) per positive for bce/bpr; extra uniform negatives for softmax
    # (0: the batch's own items are the negatives; with 2 members, 0 measured at least level with 1 on all three real
    # data sets and halves the logits, docs/quality.md "Fourth sweep")
    loss: str = field(default="softmax", metadata=CHOICES("bce", "bpr", "softmax"))
    n_negatives: int = field(default=0, metadata=NON_NEGATIVE)
    logq_correction: bool = True
    # share of sampled negatives drawn near the positive (geo-hard)
    hard_negative_ratio: float = field(default=0.0, metadata=FRACTION)
    hard_negative_km: float = field(default=1.0, metadata=POSITIVE)
    # validation carved from train (temporal when timestamps exist)
    val_fraction: float = field(default=0.1, metadata=OPEN_FRACTION)
    patience: int = field(default=2, metadata=NON_NEGATIVE)  # early stopping on validation NDCG@k; 0 disables
    # early stopping ranks at most this many validation users (a seeded sample; 0 = all): enough for the choice of
    # epoch, and it keeps a validation cheap at full Yelp size. The shared quality sets have fewer
    val_max_users: int = field(default=50_000, metadata=NON_NEGATIVE)
    # torch.set_num_threads; 0 = torch's default (all cores: measured 7x slower per epoch on the shared 2-core box,
    # small ops oversubscribe; docs/quality.md)
    threads: int = field(default=1, metadata=NON_NEGATIVE)
    device: str = "cpu"  # "auto" (cuda when available), "cpu" or "cuda[:N]"; checked in _validate_combinations
    history_leave_one_out: bool = True  # drop the target item from its own history bag while training
    # linear learning-rate decay to zero over each training run's epochs (early stopping: over train.epochs)
    lr_decay: bool = True
    # False: no validation inside train: every member trains train.epochs epochs on all training rows, side by side.
    # A 3-epoch budget with decay matched or beat early stopping + refit on all three shared sets in under half the
    # time (docs/quality.md "Ninth round"). The earlier defaults, validation inside train: PRESETS["early_stopping"]
    early_stopping: bool = False
    refit: bool = True  # after early stopping, retrain on ALL training rows (validation included) for the best
    # number of epochs: the latest interactions (the temporal validation part) then shape the weights too
    # loss weight from the interactions' weight column: "linear" (as is), "log1p" (1 + log(1 + w) damps heavy repeat
    # visitors) or "none" (every pair counts once)
    confidence: str = field(default="linear", metadata=CHOICES("linear", "log1p", "none"))
    calibrate_trend: bool = False  # after early stopping, refit the trend prior's weights on the validation rows
    # (later in time than the training rows) and keep them fixed in the refit (measured worse than learning them
    # jointly with the short default half-lives on ML-100K, docs/quality.md)
    # softmax over the WHOLE catalogue up to this many items (exact, no sampling bias, so no logQ needed); larger
    # catalogues use in-batch negatives + logQ. 0 = always in-batch
    full_softmax_max_items: int = field(default=0, metadata=NON_NEGATIVE)
    # from this many users on, the user-ID table gets sparse gradients and SparseAdam (a step touches the batch's
    # rows, not the whole table; docs/scale.md); 0 = never. Single-process runs only
    sparse_ids_min_users: int = field(default=50_000, metadata=NON_NEGATIVE)
    # from this many items on, the item-ID and grid-cell tables get sparse gradients and SparseAdam too (lazy Adam,
    # no weight decay on them); the shared benchmark sets (1.7k-5.6k items) stay below it. 0 = never
    sparse_ids_min_items: int = field(default=50_000, metadata=NON_NEGATIVE)


@dataclass(frozen=True)
class EvalConfig:
    """Held-out protocol and metrics."""

    k: int = field(default=10, metadata=POSITIVE)
    # global temporal split at the (1 - test_fraction) quantile of timestamps; 0 = train on every interaction (then
    # `geotower evaluate --test FILE` judges later interactions you hold elsewhere)
    test_fraction: float = field(default=0.2, metadata=HALF_OPEN_FRACTION)
    baselines: tuple[str, ...] = ("popular", "recent", "itemknn", "rp3beta", "ease", "als", "bpr", "content_twotower")


@dataclass(frozen=True)
class ServeConfig:
    """Service and index settings."""

    host: str = "127.0.0.1"
    port: int = field(default=8000, metadata=PORT)
    # "auto", "flat", "hnsw" or "ivf"
    index_kind: str = field(default="auto", metadata=CHOICES("auto", "flat", "hnsw", "ivf"))
    # "auto" uses exact search up to this many items
    exact_max_items: int = field(default=50_000, metadata=NON_NEGATIVE)
    allowed_hosts: tuple[str, ...] = ()  # Host names served besides the bound host and loopback (DNS rebinding)


# Named ``--set`` override lists. "original_content" reproduces the original content two-tower exactly (see
# geotower.model.towers): content features only, user = MLP(mean of the standardised features of the user's positive
# items), no IDs, BPR, one 512-unit hidden layer to 128-d outputs, raw dot products.
PRESETS: dict[str, tuple[str, ...]] = {
    "original_content": (
        "model.use_item_id=false", "model.use_user_id=false", "model.use_history=false", "model.normalize=false",
        "model.id_dropout=0.0", "model.n_layers=1", "model.hidden_dim=512", "model.embed_dim=128",
        'train.loss="bpr"', "train.n_negatives=1", "train.history_leave_one_out=false", 'features.geo_encoding="none"',
        "model.trend_half_lives_days=[]", "model.members=1",
    ),
    # validation inside train: early stopping on validation NDCG@K (train.epochs is its most), then the refit on
    # every training row; the defaults until the ninth round (docs/quality.md)
    "early_stopping": ("train.early_stopping=true", "train.lr_decay=false", "train.epochs=20",
                       "train.weight_decay=1e-5"),
}


@dataclass(frozen=True)
class RunConfig:
    """Everything one run needs; written beside every output as ``config.json``."""

    seed: int = field(default=0, metadata=NON_NEGATIVE)
    data: DataConfig = field(default_factory=DataConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists)."""
        out: dict[str, Any] = json.loads(json.dumps(dataclasses.asdict(self)))
        return out


def validate(cfg: RunConfig) -> None:
    """Every check on values: the field metadata (choices, ranges), the layer names, and key combinations.

    Raises:
        ConfigError: naming the key, its value and what is allowed.
    """
    for section in fields(RunConfig):
        value = getattr(cfg, section.name)
        _check_field(section.name, value, section.metadata)
        if dataclasses.is_dataclass(value):
            for f in fields(value):
                _check_field(f"{section.name}.{f.name}", getattr(value, f.name), f.metadata)
    from geotower.schema import LAYER_BY_NAME

    unknown = [name for name in cfg.features.layers if name not in LAYER_BY_NAME]
    if unknown:
        raise ConfigError(f"features.layers: unknown {unknown}; allowed: {', '.join(LAYER_BY_NAME)}")
    _validate_combinations(cfg)


def _check_field(key: str, value: Any, meta: typing.Mapping[str, Any]) -> None:
    if "choices" in meta and value not in meta["choices"]:
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(str, meta['choices']))}")
    if "range" not in meta:
        return
    lo, hi, lo_closed, hi_closed = meta["range"]
    for v in value if isinstance(value, tuple) else (value,):
        ok = (v >= lo if lo_closed else v > lo) and (hi is None or (v <= hi if hi_closed else v < hi))
        if not ok and "what" in meta:
            raise ConfigError(f"{key}: must be {meta['what']}, got {value!r}")
        if not ok:
            shown = list(value) if isinstance(value, tuple) else value
            if hi is None:
                raise ConfigError(f"{key}: must be {'>=' if lo_closed else '>'} {lo:g}, got {shown!r}")
            raise ConfigError(f"{key}: must be in {'[' if lo_closed else '('}{lo:g}, {hi:g}{']' if hi_closed else ')'}"
                              f", got {shown!r}")


def _validate_combinations(cfg: RunConfig) -> None:
    """Checks that involve more than one key."""
    if cfg.train.device not in ("auto", "cpu") and not cfg.train.device.startswith("cuda"):
        raise ConfigError(f"train.device: expected \"auto\", \"cpu\" or \"cuda\", got {cfg.train.device!r}")
    if cfg.train.loss == "bpr" and cfg.train.n_negatives < 1:
        raise ConfigError("train.n_negatives: the bpr loss needs at least 1 negative per positive (the default 0 suits "
                          "the softmax loss, whose negatives are the batch's other items); set train.n_negatives=1")
    if not (cfg.model.use_item_features or cfg.model.use_item_id):
        raise ConfigError("model: the item tower needs model.use_item_features or model.use_item_id")


def check_port(port: int, name: str = "--port") -> int:
    """A TCP port to bind (``serve --port 70000`` was a traceback)."""
    if not 1 <= port <= 65535:
        raise ConfigError(f"{name}: must be a TCP port in 1..65535, got {port!r}")
    return port


def replace(cfg: RunConfig, section: str, **changes: Any) -> RunConfig:
    """Copy of ``cfg`` with some keys of one section changed (validated)."""
    new = dataclasses.replace(cfg, **{section: dataclasses.replace(getattr(cfg, section), **changes)})
    validate(new)
    return new


