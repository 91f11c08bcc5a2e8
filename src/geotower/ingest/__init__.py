"""Ingest (layer L1): raw inputs in, dataset folders out, and the held-out protocol every later stage shares.

The public names below load their module on first use (:mod:`geotower._lazy`), so importing the package is cheap.
``protocol.split(ds, cfg)`` (the held-out rows) and ``simulate.simulate`` share their module's name, so they are
reached through the module: ``geotower.ingest.protocol.split``, ``geotower.ingest.simulate.simulate``.
"""

from geotower._lazy import lazy_exports

_HOMES: dict[str, tuple[str, ...]] = {
    "dataset": ("Dataset", "DatasetSpec", "TableSpec", "load_dataset", "read_interactions", "read_spec",
                "write_dataset"),
    "protocol": ("IdIndex", "SplitRows", "id_index", "known_users", "pair_csr"),
    "split": ("holdout_split", "random_split", "temporal_split"),
    "simulate": ("SimConfig", "ground_truth_scores"),
    "yelp": ("PrepareReport", "YelpFilter", "prepare_yelp"),
    "yelp_download": ("yelp_files",),
    "jsonlines": (),
    "checkins": ("prepare_checkins", "read_checkins", "resolve_format"),
    "columns": (),
    "ground_truth": (),
    "population": (),
    "spec": (),
    "text_table": (),
}

__all__ = [
    "Dataset", "DatasetSpec", "IdIndex", "PrepareReport", "SimConfig", "SplitRows", "TableSpec", "YelpFilter",
    "checkins", "columns", "dataset", "ground_truth", "ground_truth_scores", "holdout_split", "id_index", "jsonlines",
    "known_users", "load_dataset", "pair_csr", "population", "prepare_checkins", "prepare_yelp", "protocol",
    "random_split", "read_checkins", "read_interactions", "read_spec", "resolve_format", "simulate", "spec", "split",
    "temporal_split", "text_table", "write_dataset", "yelp", "yelp_download", "yelp_files",
]

__getattr__ = lazy_exports(__name__, _HOMES)
