"""Location-by-location comparison of two anchor-based dense heads."""
from typing import Any, List, Sequence, Tuple

import torch
from mmdet.models.dense_heads import AnchorHead
from torch import Tensor, nn


def dense_pair_problems(student_head: nn.Module, teacher_head: nn.Module) -> List[str]:
    """Why two heads cannot be compared location by location (empty if they can).

    They can if both are anchor-based dense heads with the same class channels, strides,
    anchors and score activation (sigmoid or softmax).
    """
    if not (isinstance(student_head, AnchorHead) and isinstance(teacher_head, AnchorHead)):
        return [f'both heads must be anchor-based dense heads (got '
                f'{type(student_head).__name__} and {type(teacher_head).__name__})']
    problems = []
    if student_head.cls_out_channels != teacher_head.cls_out_channels:
        problems.append(f'class channels differ ({student_head.cls_out_channels} vs '
                        f'{teacher_head.cls_out_channels})')
    s_gen, t_gen = student_head.prior_generator, teacher_head.prior_generator
    if s_gen.strides != t_gen.strides:
        problems.append(f'strides differ ({s_gen.strides} vs {t_gen.strides})')
    elif not all(torch.equal(a, b) for a, b in zip(s_gen.base_anchors, t_gen.base_anchors)):
        problems.append('anchors differ (anchor_generator settings)')
    if getattr(student_head, 'use_sigmoid_cls', True) != getattr(teacher_head,
                                                                 'use_sigmoid_cls', True):
        problems.append('one head uses sigmoid and the other softmax scores')
    return problems


def head_outputs(output: Any, source: str) -> Tuple[List[Tensor], List[Tensor]]:
    """A dense head's ``(cls_scores, bbox_preds)``, per level.

    Raises:
        TypeError: If ``output`` (recorded from ``source``) is not a dense head's output.
    """
    if not (isinstance(output, (tuple, list)) and len(output) >= 2):
        raise TypeError(f'Source {source!r} is not a dense head output (cls_scores, bbox_preds); '
                        'name the head module, e.g. "bbox_head".')
    return list(output[0]), list(output[1])


def flatten_levels(maps: Sequence[Tensor], channels: int) -> Tensor:
    """Per-level head maps as rows, in mmdet's prior order.

    Args:
        maps: Per level, (N, A * channels, H, W).
        channels: Values per anchor (classes, or 4 for boxes).

    Returns:
        (N * sum(H * W * A), channels): image-major, then level, then position and anchor.
    """
    num = maps[0].shape[0]
    flat = [m.permute(0, 2, 3, 1).reshape(num, -1, channels) for m in maps]
    return torch.cat(flat, dim=1).reshape(-1, channels)
