"""mmdfkd: data-free knowledge distillation of object detectors into compact ViT students.

Importing the package registers its modules into mmdet's registries, so a config only needs
``custom_imports=dict(imports=['mmdfkd'], allow_failed_imports=False)``, and the ``'atomic_local'``
file backend into mmengine's (:mod:`mmdfkd.utils.atomic_file_backend`), which writes checkpoints
atomically for a config that opts in with
``default_hooks=dict(checkpoint=dict(backend_args=dict(backend='atomic_local')))``. Beyond these
new names, the import changes exactly two things in the process:

* mmengine loads local checkpoints (``load_from``, ``resume``, ``mmengine.runner.load_checkpoint``,
  mmdet's ``init_detector``) with :func:`~mmdfkd.utils.checkpoint_files.load_from_checked_local`,
  registered through mmengine's ``CheckpointLoader.register_scheme`` for the ``''`` prefix, in
  place of mmengine's ``load_from_local``: the file is checked (complete, CRC), then loaded with
  ``weights_only=True`` and, for that load only, the allow-list of mmengine's checkpoint types
  (:mod:`mmdfkd.utils.safe_checkpoint`). A file that fails the checks raises
  :class:`~mmdfkd.utils.checkpoint_files.CheckpointFileError`; a checkpoint that needs
  ``weights_only=False`` is refused. Other schemes (``http://``, ``open-mmlab://``, ...) keep
  mmengine's loaders.
* One warning filter hides setuptools' ``pkg_resources`` deprecation warning that mmengine
  triggers at every tool start (:mod:`mmdfkd.utils.known_warnings`).

torch's weights-only allow-list, torch's global module hooks and mmengine's ``save_checkpoint``
are left as they are.
"""
from .utils import register_checked_local_loader, silence_pkg_resources_deprecation
from .version import __version__

silence_pkg_resources_deprecation()
register_checked_local_loader()

from . import datasets, engine, models  # noqa: E402,F401  (registers modules)

__all__ = ['__version__']
