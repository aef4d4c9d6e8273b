"""Distillation terms of ``DetectionDistiller``: one class per kind of loss input, registered in
:data:`mmdfkd.registry.DISTILL_TERMS` under the losses' ``input_kind``.

A new kind of term is one new file here: a :class:`DistillTerm` subclass registered under its
``input_kind``, imported below.
"""
from .base import (TERM_KEYS, DistillTerm, SourcePairTerm, TermBatch, TermConfig, build_term,
                   check_unique_names, default_term_name, scale_losses)
from .dense_head_term import DenseBoxTerm, DenseClsTerm, DenseHeadTerm
from .detections_term import DetectionsTerm, term_part_key
from .feature_term import FeatureTerm, as_levels, foreground_weight

__all__ = ['TERM_KEYS', 'DenseBoxTerm', 'DenseClsTerm', 'DenseHeadTerm', 'DetectionsTerm',
           'DistillTerm', 'FeatureTerm', 'SourcePairTerm', 'TermBatch', 'TermConfig',
           'as_levels', 'build_term', 'check_unique_names', 'default_term_name',
           'foreground_weight', 'scale_losses', 'term_part_key']
