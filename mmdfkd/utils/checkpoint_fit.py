"""Whether a checkpoint's weights fit a model before it is evaluated or resumed.

mmengine's Runner loads ``load_from`` non-strictly: weights whose shape differs from the
model's, and parameters the checkpoint lacks, are reported in a log warning and left as
initialized, and the run goes on to evaluate a half-random model. Evaluating a checkpoint with
another config than the one it was trained with (e.g. after the config changed) then gives a
near-zero mAP that looks like a result; resuming from one fails later, on the optimizer state.
:func:`checkpoint_fit_problem` finds such a mismatch up front.
"""
from typing import Any, Dict, Optional

from torch import nn

from .checkpoint_files import load_checkpoint_file

# Names shown in a message, at most.
_SHOWN = 3
# The prefix of the weights of a model saved from inside a DDP wrapper.
_DDP_PREFIX = 'module.'


def checkpoint_weights(checkpoint: Any, prefix: str = '') -> Dict[str, Any]:
    """The weights a loaded checkpoint holds, named as in the model they are for.

    Args:
        checkpoint: A loaded checkpoint: mmengine's dict with ``state_dict``, or a bare state
            dict.
        prefix: Keep only the weights whose name starts with this (e.g. ``'student.'`` for the
            student of a distiller), without it. Default ``''``: all.

    Returns:
        Name -> weight, with a ``module.`` prefix (weights saved from a DDP wrapper) stripped
        as mmengine does; empty if the checkpoint holds no state dict.
    """
    state = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        return {}
    names = ((k[len(_DDP_PREFIX):] if k.startswith(_DDP_PREFIX) else k, v)
             for k, v in state.items() if isinstance(k, str))
    return {k[len(prefix):]: v for k, v in names if k.startswith(prefix)}


def weights_fit_problem(model: nn.Module, weights: Dict[str, Any]) -> Optional[str]:
    """What keeps ``weights`` from fully loading into ``model``, if anything.

    Parameters and buffers of the model missing from ``weights``, and weights whose shape
    differs, are problems; extra entries are not (mmengine ignores them).

    Args:
        model: The model the weights are meant for (unwrapped from any DDP wrapper).
        weights: Name -> weight, as :func:`checkpoint_weights` returns them.

    Returns:
        A one-line description of the mismatch, or None when every weight fits.
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in weights]
    mismatched = [f'{k} {tuple(weights[k].shape)} vs {tuple(v.shape)}'
                  for k, v in expected.items()
                  if k in weights and hasattr(weights[k], 'shape') and weights[k].shape != v.shape]
    if not missing and not mismatched:
        return None
    parts = []
    if mismatched:
        parts.append(f'{len(mismatched)} weights of another shape (checkpoint vs model: '
                     f'{"; ".join(mismatched[:_SHOWN])})')
    if missing:
        parts.append(f'{len(missing)} of the model\'s {len(expected)} weights missing '
                     f'(e.g. {", ".join(missing[:_SHOWN])})')
    return ' and '.join(parts)


def checkpoint_fit_problem(model: nn.Module, path: str) -> Optional[str]:
    """What keeps the weights in ``path`` from fully loading into ``model``, if anything.

    See :func:`weights_fit_problem`.

    Args:
        model: The model the checkpoint is meant for (unwrapped from any DDP wrapper).
        path: A checkpoint file (mmengine's dict with ``state_dict``, or a bare state dict),
            read with :func:`~mmdfkd.utils.checkpoint_files.load_checkpoint_file`.

    Returns:
        A one-line description of the mismatch, or None when every weight fits.

    Raises:
        CheckpointFileError: If the file cannot be loaded.
    """
    return weights_fit_problem(model, checkpoint_weights(load_checkpoint_file(path)))
