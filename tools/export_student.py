"""Export the student of a distillation run as a stock mmdet detector.

``python tools/export_student.py CONFIG CHECKPOINT --out DIR`` writes ``DIR/student_config.py``
and ``DIR/student.pth``. They load with ``mmdet.apis.init_detector`` and run with
``inference_detector`` and mmdet's test tooling. The config keeps
``custom_imports=dict(imports=['mmdfkd'])`` only when the student uses a module of mmdfkd (the
ViT backbone or its neck). The checkpoint holds plain tensors and python values, so it loads
with ``torch.load(weights_only=True)`` without mmdfkd.

A checkpoint trained with ``LotteryTicketHook`` holds its pruning masks
(``checkpoint['lottery_ticket']['masks']``): they are folded into the exported weights, so the
pruned weights are exact zeros in ``student.pth`` (and in any model converted from it, e.g. to
ONNX), and the summary says how many. The masks themselves are not exported.
"""
import argparse
import copy
import os
import os.path as osp
import sys
from typing import Any, Dict, Set

import torch

import mmdfkd
from mmdfkd.engine.hooks.lottery_ticket_hook import pruned_fraction
from mmdfkd.utils import (CheckpointFileError, is_distiller_config, load_checkpoint_file,
                          load_config, student_model_config, student_weights)

_MMDFKD_TYPES = set(mmdfkd.models.__all__) | set(mmdfkd.engine.__all__)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Export the student of a distiller checkpoint')
    parser.add_argument('config', help='the distillation config the checkpoint was trained with')
    parser.add_argument('checkpoint', help='a checkpoint written by tools/train.py')
    parser.add_argument('--out', required=True, help='output directory')
    return parser.parse_args()


def _types(node: Any) -> Set[str]:
    """Every ``type`` value in a nested config."""
    found: Set[str] = set()
    if isinstance(node, dict):
        if isinstance(node.get('type'), str):
            found.add(node['type'])
        for value in node.values():
            found |= _types(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            found |= _types(value)
    return found


def fold_masks(state: Dict[str, torch.Tensor], masks: Dict[str, torch.Tensor],
               checkpoint: str) -> Dict[str, torch.Tensor]:
    """The student's weights with the pruned ones set to zero.

    Args:
        state: The student's weights, name -> tensor.
        masks: The student's ``LotteryTicketHook`` masks, name (as in ``state``) -> bool
            tensor of the weight's shape, False where the weight is pruned.
        checkpoint: The checkpoint's path, for the error message.

    Returns:
        ``state`` with every masked weight zero where its mask is False.

    Raises:
        ValueError: If a mask has no student weight of its shape.
    """
    folded = dict(state)
    for name, mask in masks.items():
        weight = state.get(name)
        if weight is None or weight.shape != mask.shape:
            found = 'none' if weight is None else f'one of shape {tuple(weight.shape)}'
            raise ValueError(f'Checkpoint {checkpoint!r} holds a lottery-ticket mask of shape '
                             f'{tuple(mask.shape)} for the student weight {name!r}, but {found}:'
                             ' its masks and weights do not belong together. Export a '
                             'checkpoint written by tools/train.py as it was saved.')
        folded[name] = weight.masked_fill(~mask, 0)
    return folded


def export_student(config: str, checkpoint: str, out_dir: str) -> None:
    """Writes ``student_config.py`` and ``student.pth`` of a distiller run to ``out_dir``.

    Args:
        config: Distillation config path (its ``model`` has a ``student``).
        checkpoint: Distiller checkpoint path.
        out_dir: Output directory (created if needed).

    Raises:
        ValueError: If the config is not a distiller's, the checkpoint holds no student, or
            its lottery-ticket masks do not fit the student's weights.
        CheckpointFileError: If the checkpoint does not exist, is a directory, or cannot be
            loaded (truncated, damaged, not a checkpoint, or unsafe).
    """
    cfg = load_config(config)
    if not is_distiller_config(cfg.model):
        raise ValueError(f'{config}: model has no `student`; this tool exports the student of a '
                         'DetectionDistiller config. A plain detector config needs no export.')
    ckpt = load_checkpoint_file(checkpoint)
    state = student_weights(ckpt)
    if not state:
        raise ValueError(f'Checkpoint {checkpoint!r} holds no `student.*` weights: was it '
                         f'written by training {config}?')
    masks = student_weights(dict(state_dict=(ckpt.get('lottery_ticket') or {}).get('masks', {})))
    state = fold_masks(state, masks, checkpoint)

    student_cfg = copy.deepcopy(cfg)
    model = student_model_config(cfg.model)
    student_cfg.model = model
    student_cfg.load_from = None
    student_cfg.resume = False
    # Hooks of mmdfkd (image synthesis, ...) belong to distillation, not to the detector.
    hooks = [h for h in student_cfg.get('custom_hooks', []) if h.get('type') not in _MMDFKD_TYPES]
    student_cfg.custom_hooks = hooks
    if not _types(model.to_dict()) & _MMDFKD_TYPES:
        student_cfg.pop('custom_imports', None)
    else:
        student_cfg.custom_imports = dict(imports=['mmdfkd'], allow_failed_imports=False)

    meta = ckpt.get('meta', {})
    dataset_meta = meta.get('dataset_meta') or {}
    plain_meta = dict(dataset_meta={
        'classes': tuple(str(c) for c in dataset_meta.get('classes', ())),
        'palette': [tuple(int(v) for v in p) for p in dataset_meta.get('palette', ())]},
        exported_from=osp.abspath(checkpoint))

    os.makedirs(out_dir, exist_ok=True)
    cfg_path = osp.join(out_dir, 'student_config.py')
    ckpt_path = osp.join(out_dir, 'student.pth')
    # Temporary names, then rename: an interrupted export never leaves a half-written file
    # under the final name.
    tmp_cfg = osp.join(out_dir, '.student_config.tmp.py')  # dump picks the format by suffix
    student_cfg.dump(tmp_cfg)
    torch.save(dict(state_dict={k: v.clone() for k, v in state.items()}, meta=plain_meta),
               ckpt_path + '.tmp')
    os.replace(tmp_cfg, cfg_path)
    os.replace(ckpt_path + '.tmp', ckpt_path)
    print(f'student config: {cfg_path}\nstudent weights: {ckpt_path} '
          f'({sum(v.numel() for v in state.values()) / 1e6:.2f}M values)')
    if masks:
        zeros = sum(int((v == 0).sum()) for v in state.values()) / sum(
            v.numel() for v in state.values())
        print(f'pruning masks folded in: {pruned_fraction(masks):.1%} of the '
              f'{sum(m.numel() for m in masks.values()) / 1e6:.2f}M weights of {len(masks)} '
              f'pruned tensors are zero ({zeros:.1%} of all student values)')


def main() -> None:
    args = parse_args()
    try:
        export_student(args.config, args.checkpoint, args.out)
    except ValueError as exc:
        sys.exit(str(exc))
    except CheckpointFileError as exc:
        sys.exit(f'Checkpoint {exc}. Give a complete .pth file written by training '
                 f'{args.config} with tools/train.py.')


if __name__ == '__main__':
    main()
