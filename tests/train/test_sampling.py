"""train/sampling.py: confidence weights of the loss."""

from __future__ import annotations

import numpy as np

from geotower.train.sampling import confidence


def test_confidence_transforms() -> None:
    w = np.array([1.0, 3.0, 0.0], dtype=np.float32)
    np.testing.assert_allclose(confidence(w, "linear"), w)
    np.testing.assert_allclose(confidence(w, "none"), [1.0, 1.0, 1.0])
    np.testing.assert_allclose(confidence(w, "log1p"), 1 + np.log1p(w), rtol=1e-6)
