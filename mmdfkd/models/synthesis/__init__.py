"""Image synthesis from frozen teachers: model inversion, a generator network, their losses
and augmentations."""
from .box_conditioned_generator import BoxConditionedGenerator
from .detector_inverter import Cohort, DetectorInverter, NonFiniteSynthesisError

__all__ = ['BoxConditionedGenerator', 'Cohort', 'DetectorInverter', 'NonFiniteSynthesisError']
