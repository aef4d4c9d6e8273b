"""Utilities: checkpoint loading safety and atomic writing, config loading and path checks,
CPU distributed set-up, environment report, the one known warning silenced."""
from .checkpoint_files import (CheckpointFileError, checkpoint_problem,
                               find_resumable_checkpoint, install_atomic_checkpoint_save,
                               load_checkpoint_file)
from .checkpoint_fit import checkpoint_fit_problem, checkpoint_weights, weights_fit_problem
from .config import load_config, prepare_config, scale_iter_schedule
from .distiller_student import is_distiller_config, student_model_config, student_weights
from .distributed import finish_distributed, init_cpu_distributed
from .known_warnings import silence_pkg_resources_deprecation
from .paths import MissingFilesError, check_config_paths
from .safe_checkpoint import allow_mmengine_checkpoint_globals

__all__ = ['CheckpointFileError', 'MissingFilesError', 'allow_mmengine_checkpoint_globals',
           'check_config_paths', 'checkpoint_fit_problem', 'checkpoint_problem',
           'checkpoint_weights', 'find_resumable_checkpoint', 'finish_distributed',
           'init_cpu_distributed', 'install_atomic_checkpoint_save', 'is_distiller_config',
           'load_checkpoint_file', 'load_config', 'prepare_config', 'scale_iter_schedule',
           'silence_pkg_resources_deprecation', 'student_model_config', 'student_weights',
           'weights_fit_problem']
