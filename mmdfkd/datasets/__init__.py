"""Datasets for data-free training: sampled box targets and stored synthetic banks; pipeline
transforms in :mod:`mmdfkd.datasets.transforms` (registered in mmdet's ``TRANSFORMS``)."""
from .synthetic_bank_dataset import SyntheticBankDataset
from .synthetic_det_dataset import SyntheticDetDataset
from .target_sampler import BoxTargetSampler
from .transforms import LanczosResize

__all__ = ['BoxTargetSampler', 'LanczosResize', 'SyntheticBankDataset', 'SyntheticDetDataset']
