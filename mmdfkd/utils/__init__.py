"""Utilities: checked checkpoint loading, the atomic file backend, config loading and path checks,
CPU distributed set-up, environment report, the one known warning silenced."""
from .atomic_file_backend import ATOMIC_LOCAL_BACKEND, AtomicLocalBackend
from .checkpoint_files import (CheckpointFileError, checkpoint_problem,
                               find_resumable_checkpoint, load_checkpoint_file,
                               load_from_checked_local, register_checked_local_loader)
from .checkpoint_fit import checkpoint_fit_problem, checkpoint_weights, weights_fit_problem
from .config import ConfigOptionError, load_config, prepare_config, scale_iter_schedule
from .distiller_student import is_distiller_config, student_model_config, student_weights
from .distributed import finish_distributed, init_cpu_distributed
from .file_hash import file_sha256
from .known_warnings import silence_pkg_resources_deprecation
from .paths import MissingFilesError, check_config_paths
from .safe_checkpoint import mmengine_checkpoint_globals

__all__ = ['ATOMIC_LOCAL_BACKEND', 'AtomicLocalBackend', 'CheckpointFileError',
           'MissingFilesError', 'check_config_paths', 'checkpoint_fit_problem',
           'checkpoint_problem', 'checkpoint_weights', 'find_resumable_checkpoint',
           'file_sha256', 'finish_distributed', 'init_cpu_distributed', 'is_distiller_config',
           'load_checkpoint_file', 'load_config', 'load_from_checked_local',
           'mmengine_checkpoint_globals', 'prepare_config', 'register_checked_local_loader',
           'scale_iter_schedule', 'silence_pkg_resources_deprecation', 'student_model_config',
           'student_weights', 'weights_fit_problem']
