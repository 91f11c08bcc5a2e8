"""Retrieve (layer L1, numpy side): the index, the catalog and the recommender that answers one query.

The public names below load their module on first use (:mod:`geotower._lazy`), so importing the package is cheap.
The HTTP service (``retrieve.service``, ``retrieve.api_models``) sits a layer higher (L3) and is not re-exported
here: ``from geotower.retrieve.service import create_app``.
"""

from geotower._lazy import lazy_exports

_HOMES: dict[str, tuple[str, ...]] = {
    "index": ("ExactIndex", "FaissIndex", "Retriever", "exact_topk", "order_by_score"),
    "index_build": ("build_index", "choose_kind", "measure_recall"),
    "index_store": ("load_index", "save_index"),
    "catalog": ("Catalog", "load_catalog"),
    "recommender": ("Query", "Recommendation", "Recommender", "open_recommender"),
    "geo_filter": ("GeoFilter", "haversine_km"),
    "explain": ("Explainer",),
}

__all__ = [
    "Catalog", "ExactIndex", "Explainer", "FaissIndex", "GeoFilter", "Query", "Recommendation",
    "Recommender", "Retriever", "build_index", "catalog", "choose_kind", "exact_topk", "explain",
    "geo_filter", "haversine_km", "index", "index_build", "index_store", "load_catalog", "load_index",
    "measure_recall", "open_recommender", "order_by_score", "recommender",
]

__getattr__ = lazy_exports(__name__, _HOMES)
