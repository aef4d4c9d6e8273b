"""Distillers: a student detector trained against frozen teacher detectors.

``detection_distiller`` holds the model; ``terms`` one class per kind of distillation term
(feature maps, dense head outputs, detections), registered in ``mmdfkd.registry.DISTILL_TERMS``;
``sources`` how a term names what it reads from a detector; ``teacher_loader`` and
``inheritance`` build the teachers and initialize student parts from them.
"""
from .detection_distiller import DetectionDistiller

__all__ = ['DetectionDistiller']
