"""Segmentation: pipelines, model selection, registry, scoring, profiles."""
