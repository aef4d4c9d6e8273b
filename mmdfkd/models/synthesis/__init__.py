"""Image synthesis from frozen teachers: the ways of producing images (synthesizers,
registered in ``mmdfkd.registry.SYNTHESIZERS``), the loss they minimize, its terms and
augmentations, and the generator network.

A new way of producing images is one new module here: a :class:`Synthesizer` subclass
registered with ``@SYNTHESIZERS.register_module()``, and imported below.
"""
from .base import (NonFiniteSynthesisError, SyntheticBatch, Synthesizer, Targets,
                   build_synthesizer, run_once)
from .box_conditioned_generator import BoxConditionedGenerator
from .competition import StudentTeacherDisagreement
from .generator_synthesizer import GeneratorSynthesizer
from .image_buffer import ImageBuffer
from .inversion_loss import InversionLoss
from .inversion_synthesizer import Cohort, InversionSynthesizer
from .patch_similarity import PatchSimilarityLoss
from .procedural_synthesizer import ProceduralSynthesizer

__all__ = ['BoxConditionedGenerator', 'Cohort', 'GeneratorSynthesizer', 'ImageBuffer',
           'InversionLoss', 'InversionSynthesizer', 'NonFiniteSynthesisError',
           'PatchSimilarityLoss', 'ProceduralSynthesizer', 'StudentTeacherDisagreement',
           'SyntheticBatch', 'Synthesizer', 'Targets', 'build_synthesizer', 'run_once']
