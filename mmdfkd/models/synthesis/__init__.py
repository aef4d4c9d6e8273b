"""Image synthesis from frozen teachers: model inversion, its losses and augmentations."""
from .detector_inverter import Cohort, DetectorInverter

__all__ = ['Cohort', 'DetectorInverter']
