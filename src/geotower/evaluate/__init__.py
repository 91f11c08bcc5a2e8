"""Evaluate (layer L2): top-K metrics, baselines, statistics and the side-by-side report.

The public names below load their module on first use (:mod:`geotower._lazy`), so importing the package is cheap.
"""

from geotower._lazy import lazy_exports

_HOMES: dict[str, tuple[str, ...]] = {
    "metrics": ("METRIC_NAMES", "evaluate_embeddings", "evaluate_scorer", "topk_metrics"),
    "heldout": ("HeldOut", "build_heldout"),
    "baselines": ("MostPopular",),
    "cf_models": (),
    "stats": ("paired_test", "per_user", "standard_error"),
    "report": ("ModelResult", "write_report"),
    "bands": (),
    "map_plot": ("plot_map", "plot_recommendations_map"),
    "formulas": (),
    "scoring": (),
    "topk": (),
}

__all__ = [
    "HeldOut", "METRIC_NAMES", "ModelResult", "MostPopular", "bands", "baselines", "build_heldout", "cf_models",
    "evaluate_embeddings", "evaluate_scorer", "formulas", "heldout", "map_plot", "metrics", "paired_test", "per_user",
    "plot_map", "plot_recommendations_map", "report", "scoring", "standard_error", "stats", "topk", "topk_metrics",
    "write_report",
]

__getattr__ = lazy_exports(__name__, _HOMES)
