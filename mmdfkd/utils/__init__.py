"""Utilities: checkpoint loading safety and atomic writing, config loading and path checks,
CPU distributed set-up, environment report."""
from .checkpoint_fit import checkpoint_fit_problem
from .checkpoint_files import (checkpoint_problem, find_resumable_checkpoint,
                               install_atomic_checkpoint_save)
from .config import load_config, prepare_config, scale_iter_schedule
from .distributed import finish_distributed, init_cpu_distributed
from .paths import MissingFilesError, check_config_paths
from .safe_checkpoint import allow_mmengine_checkpoint_globals

__all__ = ['MissingFilesError', 'allow_mmengine_checkpoint_globals', 'check_config_paths',
           'checkpoint_fit_problem', 'checkpoint_problem', 'find_resumable_checkpoint',
           'finish_distributed', 'init_cpu_distributed', 'install_atomic_checkpoint_save',
           'load_config', 'prepare_config', 'scale_iter_schedule']
