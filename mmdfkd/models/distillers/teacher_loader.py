"""Build a frozen teacher detector from its config and checkpoint, with errors that say what to
change."""
import os
import os.path as osp
import pickle
import zipfile
from typing import Optional, Union

import torch
from mmengine.config import Config, ConfigDict
from mmengine.model import BaseModel

from mmdfkd.utils.config import load_config


def resolve_teacher_config(config: Union[str, dict, Config],
                           config_dir: Optional[str] = None) -> ConfigDict:
    """Returns the model config of a teacher given as a dict, a file path or an ``mmdet::`` path.

    Args:
        config: A model config dict (or a full config with a ``model`` key), a path, or
            ``PACKAGE::path``. A relative path is looked up relative to ``config_dir`` (the
            directory of the config file that names the teacher) first, then to the working
            directory.
        config_dir: Directory of the config file that names the teacher, if known.

    Returns:
        The teacher's ``model`` config.

    Raises:
        FileNotFoundError: If no file is found; the message lists the paths tried.
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
    raise FileNotFoundError(
        f'Teacher config {config!r} was not found; tried {tried}. Give a path relative to the '
        'config file (for example "{{fileDirname}}/teacher.py"), an absolute path, or an '
        '"mmdet::" path.')


def load_teacher_checkpoint(teacher: BaseModel, checkpoint: str) -> None:
    """Loads a checkpoint into a teacher strictly, with ``weights_only=True``.

    Args:
        teacher: The built teacher model.
        checkpoint: Path of a ``.pth`` file (an mmengine checkpoint with ``state_dict`` or a
            bare state dict).

    Raises:
        FileNotFoundError: If the file does not exist.
        RuntimeError: If the file is truncated or corrupt, holds refused pickled objects, or its
            keys do not match the teacher's config.
    """
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(
            f'Teacher checkpoint {checkpoint!r} does not exist (working directory: '
            f'{os.getcwd()}). Train the teacher first or set the teacher\'s `checkpoint` in the '
            'config (or with --cfg-options) to an existing .pth file.')
    try:
        ckpt = torch.load(checkpoint, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as exc:
        raise RuntimeError(
            f'Teacher checkpoint {checkpoint!r} holds objects that are not allowed to be '
            f'unpickled (weights_only=True): {str(exc).splitlines()[0]}. Re-save it as a plain '
            'state dict from a trusted environment.') from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as exc:
        raise RuntimeError(
            f'Teacher checkpoint {checkpoint!r} could not be read ({type(exc).__name__}: '
            f'{str(exc).splitlines()[0] if str(exc) else ""}); the file is truncated or corrupt. '
            'Copy or download it again.') from exc
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise RuntimeError(f'Teacher checkpoint {checkpoint!r} holds no state dict of tensors.')
    state = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}
    result = teacher.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise RuntimeError(
            f'Teacher checkpoint {checkpoint!r} does not match the teacher config: '
            f'{len(result.missing_keys)} missing keys (e.g. {result.missing_keys[:3]}) and '
            f'{len(result.unexpected_keys)} unexpected keys (e.g. {result.unexpected_keys[:3]}). '
            'Check that the checkpoint was trained with this teacher config (backbone depth, '
            'channels, number of classes).')
