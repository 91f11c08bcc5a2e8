"""Model (layer L1): fitted input encoders, the two towers, losses and the trained run as files.

The public names below load their module on first use (:mod:`geotower._lazy`), so importing the package is cheap.
"""

from geotower._lazy import lazy_exports

_HOMES: dict[str, tuple[str, ...]] = {
    "towers": ("TwoTower",),
    "spec": ("TowerSpec",),
    "ensemble": ("TowerEnsemble", "build_towers"),
    "history": ("History", "history_bags"),
    "encoders": ("GeoEncoder", "TableEncoder"),
    "losses": ("bce_loss", "bpr_loss", "softmax_loss"),
    "bundle": ("load_bundle", "save_bundle"),
    "trend": ("trend_features",),
}

__all__ = [
    "GeoEncoder", "History", "TableEncoder", "TowerEnsemble", "TowerSpec", "TwoTower", "bce_loss", "bpr_loss",
    "build_towers", "bundle", "encoders", "ensemble", "history", "history_bags", "load_bundle", "losses",
    "save_bundle", "softmax_loss", "spec", "towers", "trend", "trend_features",
]

__getattr__ = lazy_exports(__name__, _HOMES)
