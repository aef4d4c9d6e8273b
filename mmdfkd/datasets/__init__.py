"""Datasets and data generators."""
from .synthetic_det_dataset import SyntheticDetDataset
from .target_sampler import BoxTargetSampler

__all__ = ['BoxTargetSampler', 'SyntheticDetDataset']
