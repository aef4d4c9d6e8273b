"""Datasets for data-free training: sampled box targets and stored synthetic banks."""
from .synthetic_bank_dataset import SyntheticBankDataset
from .synthetic_det_dataset import SyntheticDetDataset
from .target_sampler import BoxTargetSampler

__all__ = ['BoxTargetSampler', 'SyntheticBankDataset', 'SyntheticDetDataset']
