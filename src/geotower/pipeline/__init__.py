"""Pipelines (layer L3): compose ingest, features, model, training and evaluation into whole runs."""
