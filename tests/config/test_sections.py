"""Config sections: defaults are the measured ones; each value check (choices, ranges, combinations) names the key."""

from __future__ import annotations

import pytest

from geotower.config import RunConfig, resolve
from geotower.errors import ConfigError


def test_defaults_are_the_measured_ones() -> None:
    cfg = RunConfig()  # the original design's sizes; optimisation defaults chosen in docs/quality.md
    assert (cfg.model.embed_dim, cfg.model.hidden_dim) == (128, 512)
    assert (cfg.train.weight_decay, cfg.train.epochs, cfg.train.batch_size) == (1e-3, 3, 512)  # ninth round
    assert (cfg.train.early_stopping, cfg.train.lr_decay) == (False, True)  # a fixed budget, decayed
    assert (cfg.train.loss, cfg.train.n_negatives, cfg.model.members) == ("softmax", 0, 2)  # fourth sweep
    assert cfg.eval.k == 10
    assert cfg.features.radii == (100, 200, 500)


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("train.loss=hinge", "train.loss: 'hinge' is not one of bce, bpr, softmax"),
        ("model.embed_dim=0", "model.embed_dim: must be > 0"),
        ("eval.test_fraction=1.0", "eval.test_fraction: must be in [0, 1)"),
        ("train.val_fraction=0", "train.val_fraction: must be in (0, 1)"),
        ("features.layers=[\"roadz\"]", "features.layers: unknown ['roadz']"),
        ("train.loss=bpr", "bpr loss needs at least 1 negative per positive"),  # the default 0 is for softmax
    ],
)
def test_bad_values_name_the_key(override: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        resolve(None, [override])
    assert needle in str(info.value)
