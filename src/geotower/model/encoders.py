"""Fitted input encoders: a table of items (or users) in, a dense float matrix and geo-cell indices out.

Each encoder follows the sklearn contract (hyperparameters in ``__init__``, learned state in ``name_`` attributes,
``fit`` returns ``self``, use before ``fit`` raises :class:`NotFittedError`) and exports its state as a JSON-able
dict plus named numpy arrays, so a run can be reloaded without pickle. Encoders are fitted on training rows only;
the same state then encodes validation, test and serving rows.

Numeric columns follow the original recipe (clip at 0, ``log1p``, standardise); a column that is negative in the
training rows is only standardised. ``multi_label`` columns become multi-hot, ``categorical`` ones one-hot (top
categories; unseen values encode as all zeros). ``lat, lon`` become multi-resolution grid-cell ids (learned
embeddings in the tower) or random Fourier features of locally projected coordinates, so nearness is learnable.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from geotower import schema as S
from geotower.errors import ArtifactError, DataError, GeotowerWarning, require_fitted

MAX_CATEGORIES = 200


@dataclass
class Encoded:
    """Encoder output: ``dense`` (n, d) float32 and ``cells`` (n, n_levels) int64 (0 = unknown cell)."""

    dense: npt.NDArray[np.float32]
    cells: npt.NDArray[np.int64]


class GeoEncoder:
    """Projects lat/lon to km around the training centroid (equirectangular), then grid cells or RFF.

    Args:
        kind: "grid" (cell ids at each size in ``cells_m``), "rff" (random Fourier features) or "none".
        cells_m: grid cell sizes in metres (also the RFF length scales).
        n_rff: number of Fourier features per scale.
        seed: seed of the RFF frequencies.
    """

    def __init__(self, kind: str = "grid", cells_m: tuple[float, ...] = (250.0, 1000.0, 4000.0),
                 n_rff: int = 16, seed: int = 0) -> None:
        self.kind = kind
        self.cells_m = tuple(cells_m)
        self.n_rff = n_rff
        self.seed = seed

    def _project(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        return S.local_xy_km(lat, lon, (self.lat0_, self.lon0_))  # (n, 2) km

    def _cell_keys(self, xy: np.ndarray, size_m: float) -> np.ndarray:
        ij = np.floor(xy / (size_m / 1000.0)).astype(np.int64)  # (n, 2)
        return ij[:, 0] * 10_000_000 + ij[:, 1]

    def fit(self, lat: np.ndarray, lon: np.ndarray) -> GeoEncoder:
        """Learn the projection centre and the vocabulary of occupied cells (or the RFF frequencies)."""
        self.lat0_ = float(np.mean(lat)) if len(lat) else 0.0
        self.lon0_ = float(np.mean(lon)) if len(lon) else 0.0
        xy = self._project(lat, lon)
        self.vocab_: list[np.ndarray] = []
        if self.kind == "grid":
            self.vocab_ = [np.unique(self._cell_keys(xy, s)) for s in self.cells_m]
        rng = np.random.default_rng(self.seed)
        scales = np.repeat(np.asarray(self.cells_m, dtype=float) / 1000.0, self.n_rff)
        self.freq_ = rng.normal(size=(2, len(scales))) / scales  # (2, n_scales * n_rff)
        self.phase_ = rng.uniform(0, 2 * np.pi, size=len(scales))
        return self

    @property
    def dense_dim(self) -> int:
        return self.freq_.shape[1] if self.kind == "rff" else 0

    @property
    def cell_vocab_sizes(self) -> list[int]:
        """Embedding rows per level, including the unknown row 0."""
        return [len(v) + 1 for v in self.vocab_]

    def transform(self, lat: np.ndarray, lon: np.ndarray) -> Encoded:
        require_fitted(self, "lat0_")
        xy = self._project(lat, lon)
        n = len(lat)
        cells = np.zeros((n, len(self.vocab_)), dtype=np.int64)
        for level, (size, vocab) in enumerate(zip(self.cells_m[:len(self.vocab_)], self.vocab_, strict=True)):
            keys = self._cell_keys(xy, size)
            pos = np.clip(np.searchsorted(vocab, keys), 0, max(len(vocab) - 1, 0))
            found = (vocab[pos] == keys) if len(vocab) else np.zeros(n, dtype=bool)
            cells[:, level] = np.where(found, pos + 1, 0)
        dense = np.zeros((n, 0), dtype=np.float32)
        if self.kind == "rff":
            dense = (np.sqrt(2.0 / self.freq_.shape[1]) * np.cos(xy @ self.freq_ + self.phase_)).astype(np.float32)
        return Encoded(dense, cells)

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        require_fitted(self, "lat0_")
        meta = {"kind": self.kind, "cells_m": list(self.cells_m), "n_rff": self.n_rff, "seed": self.seed,
                "lat0": self.lat0_, "lon0": self.lon0_, "levels": len(self.vocab_)}
        arrays = {f"geo.vocab{i}": v for i, v in enumerate(self.vocab_)}
        arrays.update({"geo.freq": self.freq_, "geo.phase": self.phase_})
        return meta, arrays

    @classmethod
    def from_state(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> GeoEncoder:
        enc = cls(meta["kind"], tuple(meta["cells_m"]), meta["n_rff"], meta["seed"])
        enc.lat0_, enc.lon0_ = meta["lat0"], meta["lon0"]
        enc.vocab_ = [arrays[f"geo.vocab{i}"] for i in range(meta["levels"])]
        enc.freq_, enc.phase_ = arrays["geo.freq"], arrays["geo.phase"]
        return enc


class TableEncoder:
    """Encodes the feature columns of an items or users table (see the module docstring for the recipe).

    Args:
        id_column: the id column (never a feature).
        multi_label: column -> separator, encoded multi-hot.
        categorical: columns encoded one-hot over their most frequent values.
        exclude: columns that are not features.
        geo_kind: "grid", "rff" or "none"; used when the table has ``lat`` and ``lon``.
        cells_m: grid cell sizes (metres).
        nan_policy: "error" (DataError naming the column) or "impute" (training median, with a warning).
        seed: seed of the random Fourier features.
    """

    def __init__(self, id_column: str, multi_label: dict[str, str] | None = None,
                 categorical: tuple[str, ...] = (), exclude: tuple[str, ...] = (), geo_kind: str = "grid",
                 cells_m: tuple[float, ...] = (250.0, 1000.0, 4000.0), nan_policy: str = "error",
                 seed: int = 0) -> None:
        self.id_column = id_column
        self.multi_label = dict(multi_label or {})
        self.categorical = tuple(categorical)
        self.exclude = tuple(exclude)
        self.geo_kind = geo_kind
        self.cells_m = tuple(cells_m)
        self.nan_policy = nan_policy
        self.seed = seed

    # --- fitting ----------------------------------------------------------------------------------
    def _numeric_columns(self, df: pd.DataFrame) -> list[str]:
        skip = {self.id_column, S.NAME, S.LAT, S.LON, *self.exclude, *self.multi_label, *self.categorical}
        return [str(c) for c in df.columns if c not in skip]

    def _numeric_matrix(self, df: pd.DataFrame, fit: bool) -> np.ndarray:
        x = df[self.numeric_].to_numpy(dtype=np.float64, copy=True) if self.numeric_ else np.zeros((len(df), 0))
        bad = ~np.isfinite(x)
        if bad.any():
            col = int(np.flatnonzero(bad.any(axis=0))[0])
            row = int(np.flatnonzero(bad[:, col])[0])
            if self.nan_policy == "error":
                raise DataError(f"{int(bad.sum())} NaN/inf feature values (set data.nan_policy=\"impute\" to fill "
                                "them with the training median)", row=row, column=self.numeric_[col])
            if fit:
                self.median_ = np.array([np.median(c[np.isfinite(c)]) if np.isfinite(c).any() else 0.0 for c in x.T])
            cols = [self.numeric_[i] for i in np.flatnonzero(bad.any(axis=0))]
            warnings.warn(f"{int(bad.sum())} NaN/inf values in feature columns {cols} imputed with the training "
                          "median", GeotowerWarning, stacklevel=3)
            x = np.where(bad, self.median_[None, :], x)
        return x

    def fit(self, df: pd.DataFrame) -> TableEncoder:
        """Learn column lists, scaling, vocabularies and the geo encoding from the training rows of ``df``."""
        self.numeric_ = self._numeric_columns(df)
        self.median_ = np.zeros(len(self.numeric_))
        x = self._numeric_matrix(df, fit=True)
        self.log_ = (x.min(axis=0) >= 0) if len(x) else np.ones(x.shape[1], dtype=bool)
        z = np.where(self.log_, np.log1p(np.clip(x, 0, None)), x)
        self.mean_ = z.mean(axis=0) if len(z) else np.zeros(z.shape[1])
        std = z.std(axis=0) if len(z) else np.ones(z.shape[1])
        self.std_ = np.where(std > 1e-12, std, 1.0)
        self.vocab_ = {c: _label_vocab(df[c], sep) for c, sep in self.multi_label.items()}
        self.vocab_.update({c: _label_vocab(df[c], None) for c in self.categorical})
        self.geo_: GeoEncoder | None = None
        if S.LAT in df.columns and S.LON in df.columns and self.geo_kind != "none":
            self.geo_ = GeoEncoder(self.geo_kind, self.cells_m, seed=self.seed).fit(
                df[S.LAT].to_numpy(float), df[S.LON].to_numpy(float))
        return self

    # --- transforming -----------------------------------------------------------------------------
    @property
    def feature_columns(self) -> list[str]:
        """Every input column the encoder reads (the feature schema checked at serving time)."""
        require_fitted(self, "numeric_")
        geo = [S.LAT, S.LON] if self.geo_ is not None else []
        return self.numeric_ + list(self.multi_label) + list(self.categorical) + geo

    @property
    def dense_dim(self) -> int:
        require_fitted(self, "numeric_")
        geo = self.geo_.dense_dim if self.geo_ is not None else 0
        return len(self.numeric_) + sum(len(v) for v in self.vocab_.values()) + geo

    @property
    def cell_vocab_sizes(self) -> list[int]:
        require_fitted(self, "numeric_")
        return self.geo_.cell_vocab_sizes if self.geo_ is not None else []

    def check_columns(self, df: pd.DataFrame) -> None:
        """Raise ArtifactError naming any feature column missing from ``df`` or not seen in training."""
        expected = set(self.feature_columns)
        missing = [c for c in self.feature_columns if c not in df.columns]
        if missing:
            raise ArtifactError(f"feature column(s) {missing} used in training are missing from the input")
        known = expected | {self.id_column, S.NAME, *self.exclude}
        if self.geo_ is None:
            known |= {S.LAT, S.LON}
        extra = [str(c) for c in df.columns if c not in known]
        if extra:
            raise ArtifactError(f"feature column(s) {extra} were not seen in training; the model was trained with "
                                f"{self.feature_columns}")

    def transform(self, df: pd.DataFrame) -> Encoded:
        """Encode rows with the fitted state: (n, dense_dim) float32 plus (n, levels) cell ids."""
        require_fitted(self, "numeric_")
        x = self._numeric_matrix(df, fit=False)
        z = (np.where(self.log_, np.log1p(np.clip(x, 0, None)), x) - self.mean_) / self.std_
        parts = [z.astype(np.float32)]
        for col, vocab in self.vocab_.items():
            parts.append(_one_hot(df[col], vocab, self.multi_label.get(col)))
        cells = np.zeros((len(df), 0), dtype=np.int64)
        if self.geo_ is not None:
            geo = self.geo_.transform(df[S.LAT].to_numpy(float), df[S.LON].to_numpy(float))
            parts.append(geo.dense)
            cells = geo.cells
        return Encoded(np.concatenate(parts, axis=1).astype(np.float32), cells)

    # --- state ------------------------------------------------------------------------------------
    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """JSON-able metadata and named arrays that :meth:`from_state` rebuilds the encoder from."""
        require_fitted(self, "numeric_")
        meta: dict[str, Any] = {
            "id_column": self.id_column, "multi_label": self.multi_label, "categorical": list(self.categorical),
            "exclude": list(self.exclude), "geo_kind": self.geo_kind, "cells_m": list(self.cells_m),
            "nan_policy": self.nan_policy, "seed": self.seed, "numeric": self.numeric_,
            "vocab": {c: list(v) for c, v in self.vocab_.items()}, "geo": None,
            "feature_columns": self.feature_columns, "dense_dim": self.dense_dim,
        }
        arrays = {"log": self.log_.astype(np.uint8), "mean": self.mean_, "std": self.std_, "median": self.median_}
        if self.geo_ is not None:
            meta["geo"], geo_arrays = self.geo_.state()
            arrays.update(geo_arrays)
        return meta, arrays

    @classmethod
    def from_state(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> TableEncoder:
        enc = cls(meta["id_column"], meta["multi_label"], categorical=tuple(meta["categorical"]),
                  exclude=tuple(meta["exclude"]), geo_kind=meta["geo_kind"], cells_m=tuple(meta["cells_m"]),
                  nan_policy=meta["nan_policy"], seed=meta["seed"])
        enc.numeric_ = list(meta["numeric"])
        enc.vocab_ = {c: list(v) for c, v in meta["vocab"].items()}
        enc.log_, enc.mean_ = arrays["log"].astype(bool), arrays["mean"]
        enc.std_, enc.median_ = arrays["std"], arrays["median"]
        enc.geo_ = GeoEncoder.from_state(meta["geo"], arrays) if meta["geo"] is not None else None
        return enc


def _labels(values: pd.Series, sep: str | None) -> pd.Series:
    """One label per row (categorical) or exploded labels (multi-label); missing values give no label."""
    s = values.dropna().astype(str)
    if sep is None:
        return s
    parts = s.str.split(sep, regex=False).explode().str.strip()
    return parts[parts != ""]


def _label_vocab(values: pd.Series, sep: str | None) -> list[str]:
    counts = _labels(values, sep).value_counts(sort=False)
    order = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))  # frequent first, ties by name
    return [str(k) for k, _ in order[:MAX_CATEGORIES]]


def _one_hot(values: pd.Series, vocab: list[str], sep: str | None) -> np.ndarray:
    out = np.zeros((len(values), len(vocab)), dtype=np.float32)
    labels = _labels(values.reset_index(drop=True), sep)
    codes = pd.Categorical(labels.to_numpy(), categories=vocab).codes
    rows = labels.index.to_numpy()
    ok = codes >= 0
    out[rows[ok], codes[ok]] = 1.0
    return out
