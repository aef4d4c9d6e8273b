"""Build a frozen teacher detector from its config and checkpoint, with errors that say what to
change."""
import os
import os.path as osp
from typing import Optional, Union

import torch
from mmengine.config import Config, ConfigDict
from mmengine.model import BaseModel

from mmdfkd.utils.checkpoint_files import CheckpointFileError, load_checkpoint_file
from mmdfkd.utils.checkpoint_fit import checkpoint_weights
from mmdfkd.utils.config import load_config
from mmdfkd.utils.paths import missing_checkpoint_message


def resolve_teacher_config(config: Union[str, dict, Config],
                           config_dir: Optional[str] = None) -> ConfigDict:
    """Returns the model config of a teacher given as a dict, a file path or an ``mmdet::`` path.

    A config names a teacher config next to itself as ``'{{fileDirname}}/teacher.py'``:
    mmengine replaces ``{{fileDirname}}`` with the folder of the file being parsed, so the path
    is absolute and right whichever config inherits it and whichever tool (this project's or
    mmdet's own) loads it, from any working directory.

    Args:
        config: A model config dict (or a full config with a ``model`` key), a path, or
            ``PACKAGE::path``. A relative path is looked up in ``config_dir`` first, if given,
            then in the working directory, like mmdet's other relative paths (``data_root``,
            ``load_from``).
        config_dir: A folder to look relative paths up in before the working directory.

    Returns:
        The teacher's ``model`` config.

    Raises:
        FileNotFoundError: If no file is found; the message lists the paths tried and says how
            to name a file next to the config.
    """
    if isinstance(config, (dict, Config)):
        cfg = ConfigDict(config)
        return cfg.model if 'model' in cfg else cfg
    if '::' in config or osp.isabs(config):
        return load_config(config).model
    tried = [osp.join(config_dir, config)] if config_dir else []
    tried.append(osp.abspath(config))
    for path in tried:
        if osp.isfile(path):
            return load_config(path).model
    name = config[2:] if config.startswith('./') else config
    raise FileNotFoundError(
        f'Teacher config {config!r} was not found; tried {tried} (a relative path is looked '
        f'up in the working directory, {os.getcwd()}). Give a path relative to the config file '
        f'that names the teacher as "{{{{fileDirname}}}}/{name}" (mmengine replaces '
        '{{fileDirname}} with the folder of that file, so it works from any folder and with '
        'mmdet\'s own tools), an absolute path, or an "mmdet::" path.')


def load_teacher_checkpoint(teacher: BaseModel, checkpoint: str, url: Optional[str] = None,
                            key: Optional[str] = None) -> None:
    """Loads a checkpoint into a teacher strictly, with ``weights_only=True``.

    The file is checked and read by :func:`~mmdfkd.utils.checkpoint_files.load_checkpoint_file`:
    both formats of ``torch.save`` load (the zip archive, and the legacy format of mmdet's
    older model-zoo files).

    Args:
        teacher: The built teacher model.
        checkpoint: Path of a ``.pth`` file (an mmengine checkpoint with ``state_dict`` or a
            bare state dict).
        url: Where the checkpoint can be downloaded (e.g. mmdet's model zoo), named in the
            error if the file is missing.
        key: The config key of ``checkpoint`` (e.g. ``model.teachers.0.checkpoint``), named in
            the error as the ``--cfg-options`` to change.

    Raises:
        FileNotFoundError: If the file does not exist; the message names the path, ``url``
            and ``key``.
        RuntimeError: If the path is a directory, the file is truncated, corrupt or not a
            checkpoint, holds refused pickled objects, or its keys do not match the teacher's
            config.
    """
    if not osp.exists(checkpoint):
        raise FileNotFoundError(missing_checkpoint_message(checkpoint, url, key))
    try:
        ckpt = load_checkpoint_file(checkpoint)
    except CheckpointFileError as exc:
        option = f'--cfg-options {key}=PATH' if key else "the teacher's `checkpoint`"
        raise RuntimeError(f'Teacher checkpoint {exc}. Give a complete .pth file from a '
                           f'trusted source: {option}.') from exc
    state = checkpoint_weights(ckpt)
    if not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise RuntimeError(f'Teacher checkpoint {checkpoint!r} holds no state dict of tensors.')
    own = teacher.state_dict()
    wrong_shapes = [f'{k}: checkpoint {tuple(v.shape)}, config {tuple(own[k].shape)}'
                    for k, v in state.items() if k in own and v.shape != own[k].shape]
    if wrong_shapes:
        raise RuntimeError(
            f'Teacher checkpoint {checkpoint!r} does not match the teacher config: '
            f'{len(wrong_shapes)} tensors differ in shape (e.g. {wrong_shapes[:3]}). Check that '
            'the checkpoint was trained with this teacher config (backbone depth, channels, '
            'number of classes).')
    if not all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()):
        raise RuntimeError(
            f'Teacher checkpoint {checkpoint!r} holds NaN or infinite weights: the teacher '
            'diverged before it was saved. Use an earlier checkpoint of the teacher.')
    result = teacher.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise RuntimeError(
            f'Teacher checkpoint {checkpoint!r} does not match the teacher config: '
            f'{len(result.missing_keys)} missing keys (e.g. {result.missing_keys[:3]}) and '
            f'{len(result.unexpected_keys)} unexpected keys (e.g. {result.unexpected_keys[:3]}). '
            'Check that the checkpoint was trained with this teacher config (backbone depth, '
            'channels, number of classes).')
