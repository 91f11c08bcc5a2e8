"""Config: defaults are the original design; one precedence rule; errors name the key and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from geotower.config import RunConfig, resolve, to_toml
from geotower.errors import ConfigError


def test_defaults_are_the_measured_ones() -> None:
    cfg = RunConfig()  # the original design's sizes; optimisation defaults chosen in docs/quality.md
    assert (cfg.model.embed_dim, cfg.model.hidden_dim) == (128, 512)
    assert (cfg.train.weight_decay, cfg.train.epochs, cfg.train.batch_size) == (1e-5, 20, 512)
    assert (cfg.train.loss, cfg.train.n_negatives, cfg.model.members) == ("softmax", 0, 2)  # fourth sweep
    assert cfg.eval.k == 10
    assert cfg.features.radii == (100, 200, 500)


def test_precedence_flag_over_file_over_default(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("seed = 7\n[train]\nlr = 0.01\nepochs = 3\n")
    cfg = resolve(f, ["train.epochs=5", "model.embed_dim=32", "features.radii=[50, 150]"])
    assert cfg.seed == 7 and cfg.train.lr == 0.01  # from the file
    assert cfg.train.epochs == 5  # the flag wins over the file
    assert cfg.model.embed_dim == 32 and cfg.features.radii == (50, 150)
    assert cfg.train.batch_size == RunConfig().train.batch_size  # default


def test_toml_round_trip(tmp_path: Path) -> None:
    cfg = resolve(None, ["train.loss=bpr", "train.n_negatives=1", "features.layers=[\"roads\", \"pois\"]", "seed=3"])
    f = tmp_path / "c.toml"
    f.write_text(to_toml(cfg))
    assert resolve(f) == cfg


def test_unquoted_string_override_is_accepted() -> None:
    assert resolve(None, ["train.loss=bce"]).train.loss == "bce"


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("train.lrr=1", "unknown key train.lrr; allowed keys in [train]: lr"),
        ("bogus.x=1", "unknown key 'bogus'"),
        ("train.lr=\"fast\"", "train.lr: expected float"),
        ("model.embed_dim=1.5", "model.embed_dim: expected int"),
        ("train.loss=hinge", "train.loss: 'hinge' is not one of bce, bpr, softmax"),
        ("model.embed_dim=0", "model.embed_dim: must be > 0"),
        ("eval.test_fraction=1.0", "eval.test_fraction: must be in [0, 1)"),
        ("train.val_fraction=0", "train.val_fraction: must be in (0, 1)"),
        ("features.layers=[\"roadz\"]", "features.layers: unknown ['roadz']"),
        ("train.lr", "expected section.key=value"),
        ("train.loss=bpr", "bpr loss needs at least 1 negative per positive"),  # the default 0 is for softmax
    ],
)
def test_bad_values_name_the_key(override: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        resolve(None, [override])
    assert needle in str(info.value)


def test_missing_or_invalid_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        resolve(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nlr=1")
    with pytest.raises(ConfigError, match="invalid TOML"):
        resolve(bad)
