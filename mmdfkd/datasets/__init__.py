"""Datasets and data generators."""
from .synthetic_bank_dataset import SyntheticBankDataset
from .synthetic_det_dataset import SyntheticDetDataset
from .target_sampler import BoxTargetSampler

__all__ = ['BoxTargetSampler', 'SyntheticBankDataset', 'SyntheticDetDataset']
