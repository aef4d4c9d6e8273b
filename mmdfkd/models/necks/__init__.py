"""Necks registered in ``mmdet.registry.MODELS``."""
from .simple_feature_pyramid import SimpleFeaturePyramid

__all__ = ['SimpleFeaturePyramid']
