"""Distillers: a student detector trained against frozen teacher detectors."""
from .detection_distiller import DetectionDistiller

__all__ = ['DetectionDistiller']
