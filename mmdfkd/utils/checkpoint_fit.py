"""Whether a checkpoint's weights fit a model before it is evaluated.

mmengine's Runner loads ``load_from`` non-strictly: weights whose shape differs from the
model's, and parameters the checkpoint lacks, are reported in a log warning and left as
initialized, and the run goes on to evaluate a half-random model. Evaluating a checkpoint with
another config than the one it was trained with (e.g. after the config changed) then gives a
near-zero mAP that looks like a result. :func:`checkpoint_fit_problem` finds such a mismatch
up front.
"""
from typing import Optional

import torch
from torch import nn

# Names shown in a message, at most.
_SHOWN = 3


def checkpoint_fit_problem(model: nn.Module, path: str) -> Optional[str]:
    """What keeps the weights in ``path`` from fully loading into ``model``, if anything.

    Parameters and buffers of the model missing from the checkpoint, and weights whose shape
    differs, are problems; extra entries in the checkpoint are not (mmengine ignores them).
    A ``module.`` prefix (weights saved from a DDP wrapper) is stripped as mmengine does.

    Args:
        model: The model the checkpoint is meant for (unwrapped from any DDP wrapper).
        path: A checkpoint file (mmengine's dict with ``state_dict``, or a bare state dict),
            read with ``weights_only=True``.

    Returns:
        A one-line description of the mismatch, or None when every weight fits.
    """
    checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    state = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) else {}
    state = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    mismatched = [f'{k} {tuple(state[k].shape)} vs {tuple(v.shape)}'
                  for k, v in expected.items()
                  if k in state and hasattr(state[k], 'shape') and state[k].shape != v.shape]
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
