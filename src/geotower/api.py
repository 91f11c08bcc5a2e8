"""The public Python API: DataFrames in, a trained retriever, an honest evaluation and explained answers out.

Each call is one pipeline stage, the same function the CLI command runs, so a notebook and a shell script produce
identical run folders::

    import geotower as gt
    ds = gt.Dataset.from_frames(interactions, items)               # validated, written as a dataset folder
    ds = ds.with_features(gt.osm_features(ds.items, "city-latest-free.shp.zip"))
    run = gt.train(ds, {"train.epochs": 5}, out="runs/first")
    report = run.evaluate(baselines=True); report.to_frame()
    run.recommend(user="u1", near=(60.17, 24.94), radius_km=1, k=10)   # a DataFrame with a `reasons` column

Everything stays on disk in the documented folder contracts (a dataset folder, a run folder), so any result can be
reopened with :meth:`Dataset.open` / :meth:`Run.open` or handed to ``geotower serve``.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from geotower import artifacts
from geotower import schema as S
from geotower.config import RunConfig, resolve
from geotower.errors import DataError
from geotower.evaluate.map_plot import plot_map

ConfigLike = RunConfig | Mapping[str, Any] | Sequence[str] | str | Path | None


def _config(config: ConfigLike) -> RunConfig:
    """A RunConfig from a RunConfig, ``{"train.epochs": 5}``, ``["train.epochs=5"]`` or a TOML file path."""
    if config is None:
        return resolve(None, ())
    if isinstance(config, RunConfig):
        return config
    if isinstance(config, str | Path):
        return resolve(config, ())
    if isinstance(config, Mapping):
        return resolve(None, [f"{k}={json.dumps(v)}" for k, v in config.items()])
    return resolve(None, list(config))


def _scratch(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"geotower-{prefix}-"))


@dataclass
class Dataset:
    """A validated dataset folder (``interactions``, ``items`` [, ``users``], ``dataset.toml``)."""

    folder: Path
    _loaded: Any = field(default=None, repr=False)

    @classmethod
    def open(cls, folder: str | Path) -> Dataset:
        """Open and validate an existing dataset folder (errors name file, row and column)."""
        ds = cls(Path(folder))
        ds.load()
        return ds

    @classmethod
    def from_frames(cls, interactions: pd.DataFrame, items: pd.DataFrame, users: pd.DataFrame | None = None,
                    spec: Any = None, folder: str | Path | None = None) -> Dataset:
        """Write DataFrames as a dataset folder (a temporary one unless ``folder``) and validate it.

        Args:
            interactions: ``user_id, item_id`` [, ``rating``, ``timestamp``, weight column].
            items: ``item_id`` [, ``lat, lon``, ``name``] + feature columns.
            users: optional ``user_id`` + feature columns.
            spec: a :class:`geotower.ingest.dataset.DatasetSpec`, or a path to a ``dataset.toml``.
        """
        from geotower.ingest.dataset import DatasetSpec, read_spec, write_dataset

        if spec is None:
            spec = DatasetSpec()
        elif isinstance(spec, str | Path):
            spec = read_spec(Path(spec))
        out = Path(folder) if folder is not None else _scratch("data")
        for name, frame in (("interactions", interactions), ("items", items), ("users", users)):
            if frame is not None and not isinstance(frame, pd.DataFrame):
                raise DataError(f"{name} must be a pandas DataFrame, got {type(frame).__name__}")
        write_dataset(out, interactions.reset_index(drop=True), items.reset_index(drop=True), spec,
                      None if users is None else users.reset_index(drop=True))
        return cls.open(out)

    @classmethod
    def from_checkins(cls, path: str | Path, preset: str | None = None, folder: str | Path | None = None,
                      pois: str | Path | None = None, **columns: str) -> Dataset:
        """A check-in log (``geotower prepare checkins``): a ``preset`` or ``user=..., item=..., time=...``."""
        from geotower.ingest.checkins import prepare_checkins, resolve_format

        out = Path(folder) if folder is not None else _scratch("checkins")
        prepare_checkins(path, out, resolve_format(preset, **columns), pois=pois)
        return cls.open(out)

    def load(self) -> Any:
        from geotower.ingest.dataset import load_dataset

        if self._loaded is None:
            self._loaded = load_dataset(self.folder)
        return self._loaded

    @property
    def interactions(self) -> pd.DataFrame:
        return self.load().interactions

    @property
    def items(self) -> pd.DataFrame:
        return self.load().items

    def with_features(self, features: pd.DataFrame) -> Dataset:
        """Merge feature columns (``item_id`` + columns, e.g. :func:`osm_features`) into the items table."""
        if S.ITEM_ID not in features.columns:
            raise DataError("the features table needs an item_id column", column=S.ITEM_ID)
        from geotower.ingest.dataset import find_table

        items_path = find_table(self.folder, S.ITEMS_STEM)
        assert items_path is not None
        items = artifacts.read_table(items_path, dtype={S.ITEM_ID: str})
        names = [c for c in features.columns if c != S.ITEM_ID]
        merged = items.drop(columns=[c for c in names if c in items.columns]).merge(
            features.astype({S.ITEM_ID: str}), on=S.ITEM_ID, how="left")
        merged[names] = merged[names].fillna(0.0)
        with artifacts.staged_folder(self.folder, "dataset", keep_existing=True) as stage:  # atomic, like prepare
            artifacts.write_table(stage / items_path.name, merged)
        self._loaded = None
        self.load()
        return self


def osm_features(items: pd.DataFrame, source: str | Path, radii: Sequence[int] = S.DEFAULT_RADII,
                 mode: str = "clipped", layers: Sequence[str] = ()) -> pd.DataFrame:
    """OSM context features (``<layer>_<r>m_count|len|area``) around each place (``item_id, lat, lon``)."""
    from geotower.config import FeaturesConfig
    from geotower.geo.context import compute_osm_features

    cfg = FeaturesConfig(radii=tuple(radii), mode=mode, layers=tuple(layers))
    return compute_osm_features(items, source, cfg)


@dataclass
class Report:
    """Metrics of geotower beside the baselines on one test set."""

    k: int
    rows: list[Any]
    summary: dict[str, Any]
    paths: dict[str, Path]

    def to_frame(self) -> pd.DataFrame:
        """One row per model: metrics at K (+ ``users`` and ``fit_s``), geotower first."""
        records = []
        for r in self.rows:
            records.append({"model": r.name, **{f"{m}@{self.k}": v for m, v in r.metrics.items() if m != "users"},
                            "fit_s": r.fit_s, "note": r.note})
        return pd.DataFrame.from_records(records).set_index("model")

    def _repr_html_(self) -> str:
        html: str = self.to_frame().to_html(float_format=lambda v: f"{v:.4f}")
        return html


@dataclass
class Run:
    """A trained run folder (weights, encoders, embeddings, manifest)."""

    path: Path
    _rec: Any = field(default=None, repr=False)

    @classmethod
    def open(cls, path: str | Path) -> Run:
        run = cls(Path(path))
        artifacts.read_json(run.path / artifacts.MANIFEST)  # a clear error when this is not a run
        return run

    @property
    def config(self) -> RunConfig:
        from geotower.config import from_dict

        return from_dict(artifacts.read_json(self.path / artifacts.CONFIG_JSON))

    def evaluate(self, test: str | Path | pd.DataFrame | None = None, baselines: bool = True,
                 k: int | None = None, progress: bool = False) -> Report:
        """Held-out metrics (the run's split, or ``test`` rows) beside the baselines; writes ``RUN/eval/``."""
        from geotower.pipeline.evaluate import evaluate_run

        test_file: Path | None = None
        if isinstance(test, pd.DataFrame):
            test_file = _scratch("test") / "test.parquet"
            artifacts.write_table(test_file, test.reset_index(drop=True))
        elif test is not None:
            test_file = Path(test)
        res = evaluate_run(self.path, k=k, test_file=test_file, baselines=baselines, progress=progress)
        return Report(res.k, res.rows, res.summary(), res.paths)

    def recommender(self) -> Any:
        """The run's :class:`~geotower.retrieve.recommender.Recommender` (loaded once, with its explainer)."""
        if self._rec is None:
            from geotower.model.bundle import load_bundle
            from geotower.retrieve.recommender import open_recommender

            bundle = load_bundle(self.path, verify_data=True)
            self._rec = open_recommender(bundle, self.path, bundle.config.serve.exact_max_items)
        return self._rec

    def recommend(self, user: str | None = None, liked: Sequence[str] = (), near: tuple[float, float] | None = None,
                  radius_km: float | None = None, k: int = 10, exclude_seen: bool = True,
                  explain: bool = True) -> pd.DataFrame:
        """Top-``k`` places as a DataFrame (``item_id, score, name, lat, lon, distance_km`` [, ``reasons``]).

        A known ``user`` ranks by their embedding; ``liked`` item ids alone rank a new user (cold start); neither
        gives popularity. ``attrs["mode"]`` and ``attrs["note"]`` say which.
        """
        from geotower.retrieve.recommender import Query

        rec = self.recommender()
        result = rec.recommend(Query(user, tuple(liked), k, near, radius_km, exclude_seen))
        frame = pd.DataFrame.from_records(rec.records(result, explain),
                                          columns=["item_id", "score", "name", "lat", "lon", "distance_km"]
                                          + (["reasons"] if explain else []))
        frame.attrs.update(mode=result.mode, note=result.note)
        return frame

    def surroundings(self, osm: str | Path) -> Path:
        """Build the map's background layers from an OSM extract (``RUN/surroundings.json``, for ``serve``)."""
        from geotower.geo.basemap import write_run_surroundings

        return write_run_surroundings(self.path, osm)

    def plot(self, recommendations: pd.DataFrame, osm: str | Path | None = None, ax: Any = None) -> Any:
        """A matplotlib map: the OSM surroundings (when ``osm``), every place, and the ranked recommendations."""
        from geotower.geo.basemap import build_surroundings

        items = artifacts.read_table(self.path / "items.parquet")
        return plot_map(items, recommendations, build_surroundings(osm, items[S.LAT], items[S.LON]) if osm else None,
                        ax)

    def app(self, osm: str | Path | None = None) -> Any:
        """The FastAPI app of ``geotower serve`` (run it with uvicorn, or test it with a TestClient)."""
        from geotower.retrieve.service import create_app

        return create_app(self.path, osm=osm)


def train(dataset: Dataset | str | Path, config: ConfigLike = None, out: str | Path | None = None,
          progress: bool = False) -> Run:
    """Train the two towers (``geotower train``) and return the run (a temporary folder unless ``out``)."""
    from geotower.pipeline.train import train_run

    folder = dataset.folder if isinstance(dataset, Dataset) else Path(dataset)
    out_dir = Path(out) if out is not None else _scratch("run") / "run"
    train_run(folder, out_dir, _config(config), progress=progress)
    return Run.open(out_dir)


__all__ = ["Dataset", "Report", "Run", "osm_features", "plot_map", "train"]
