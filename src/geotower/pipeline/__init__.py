"""Pipelines (layer L3): compose ingest, features, model, training and evaluation into whole runs.

The public names below load their module on first use (:mod:`geotower._lazy`), so importing the package is cheap.
"""

from geotower._lazy import lazy_exports

_HOMES: dict[str, tuple[str, ...]] = {
    "train": ("train_run",),
    "evaluate": ("EvalResult", "evaluate_run"),
    "evaluate_rows": (),
    "prepare": ("prepare_yelp_dataset",),
    "features": ("add_osm_features_to_dataset", "osm_features"),
    "recommend": ("add_items", "build_run_index", "recommend_run"),
    "demo": ("DemoConfig", "run_demo"),
}

__all__ = [
    "DemoConfig", "EvalResult", "add_items", "add_osm_features_to_dataset", "build_run_index", "demo", "evaluate",
    "evaluate_rows", "evaluate_run", "features", "osm_features", "prepare", "prepare_yelp_dataset", "recommend",
    "recommend_run", "run_demo", "train", "train_run",
]

__getattr__ = lazy_exports(__name__, _HOMES)
