"""Config loading: one precedence rule, a TOML round trip; unknown keys, wrong types and bad files name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from geotower.config import RunConfig, resolve, to_toml
from geotower.errors import ConfigError


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
        ("train.lr", "expected section.key=value"),
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
