"""Utilities: checkpoint loading safety, config loading, environment report."""
from .config import load_config, prepare_config, scale_iter_schedule
from .safe_checkpoint import allow_mmengine_checkpoint_globals

__all__ = ['allow_mmengine_checkpoint_globals', 'load_config', 'prepare_config',
           'scale_iter_schedule']
