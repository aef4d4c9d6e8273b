"""Datasets and data generators."""
