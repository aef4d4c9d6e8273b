"""Build a frozen teacher detector from its config and checkpoint, with errors that say what to
change."""
import os.path as osp
import pickle
import zipfile
from typing import Optional, Union

import torch
from mmengine.config import Config, ConfigDict
from mmengine.model import BaseModel

from mmdfkd.utils.config import load_config
from mmdfkd.utils.paths import missing_checkpoint_message


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


def load_teacher_checkpoint(teacher: BaseModel, checkpoint: str, url: Optional[str] = None,
                            key: Optional[str] = None) -> None:
    """Loads a checkpoint into a teacher strictly, with ``weights_only=True``.

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
        RuntimeError: If the file is truncated or corrupt, holds refused pickled objects, or its
            keys do not match the teacher's config.
    """
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(missing_checkpoint_message(checkpoint, url, key))
    # torch.load checks no CRC: a file damaged inside a tensor would load as garbage weights.
    try:
        with zipfile.ZipFile(checkpoint) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError) as exc:
        raise RuntimeError(
            f'Teacher checkpoint {checkpoint!r} is not a complete PyTorch checkpoint ({exc}): '
            'the file is truncated or is not a checkpoint. Copy or download it again.') from exc
    if damaged is not None:
        raise RuntimeError(
            f'Teacher checkpoint {checkpoint!r} is corrupt: its member {damaged} fails its CRC '
            'check. Copy or download it again.')
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
