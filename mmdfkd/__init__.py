"""mmdfkd: data-free knowledge distillation of object detectors into compact ViT students.

Importing the package registers its modules into mmdet's registries, so a config only needs
``custom_imports=dict(imports=['mmdfkd'], allow_failed_imports=False)``. It also lets mmengine's
own checkpoints load under torch's default ``weights_only=True`` (see
:mod:`mmdfkd.utils.safe_checkpoint`) and makes mmengine write checkpoints atomically, so a run
killed while saving leaves the previous checkpoint intact (see
:mod:`mmdfkd.utils.checkpoint_files`), and filters the one deprecation warning of
``pkg_resources`` that mmengine triggers at every tool start (see
:mod:`mmdfkd.utils.known_warnings`).
"""
from .utils import (allow_mmengine_checkpoint_globals, install_atomic_checkpoint_save,
                    silence_pkg_resources_deprecation)
from .version import __version__

silence_pkg_resources_deprecation()
allow_mmengine_checkpoint_globals()
install_atomic_checkpoint_save()

from . import datasets, engine, models  # noqa: E402,F401  (registers modules)

__all__ = ['__version__']
