"""Dense head terms: a loss comparing two anchor-based heads' outputs anchor by anchor."""
from typing import List, Sequence, Tuple

import torch
from torch import Tensor, nn

from mmdfkd.registry import DISTILL_TERMS
from ...utils.dense_heads import dense_pair_problems, flatten_levels, head_outputs
from ...utils.recorder import resolve_submodule
from ..sources import parse_source
from .base import SourcePairTerm, TermBatch, TermConfig


class DenseHeadTerm(SourcePairTerm):
    """Compares the student's and each teacher's dense head outputs at every anchor, e.g.
    ``student='bbox_head', teacher='bbox_head'``.

    Both heads' per-level maps are flattened in mmdet's prior order (image, level, position,
    anchor), so row i of the student and of the teacher belong to the same anchor; the heads
    must share anchors, strides, classes and score activation, checked at build time.
    Subclasses say what the loss compares: :class:`DenseClsTerm`, :class:`DenseBoxTerm`.

    Raises:
        ValueError: If a pair of heads cannot be compared anchor by anchor.
    """

    unused_reason = 'a dense head term compares every level of the heads'

    def __init__(self, config: TermConfig, student: nn.Module,
                 teachers: Sequence[nn.Module]) -> None:
        super().__init__(config, student, teachers)
        for t in self.teacher_ids:
            problems = dense_pair_problems(_head(student, self.student_source),
                                           _head(teachers[t], self.teacher_source))
            if problems:
                raise ValueError(
                    f'{self.name} ({type(self.loss).__name__}) compares head outputs location '
                    f'by location, which does not fit student {self.student_source!r} and '
                    f'teacher {t} {self.teacher_source!r}: {"; ".join(problems)}. Use feature '
                    'losses and PseudoBoxLoss for this pair.')

    def _outputs(self, teacher_id: int, batch: TermBatch
                 ) -> Tuple[nn.Module, nn.Module, List[Tensor], List[Tensor], List[Tensor],
                            List[Tensor]]:
        """Both heads and their per-level outputs: ``(head, teacher_head, cls_s, reg_s,
        cls_t, reg_t)``, maps of (N, A * K, H, W) and (N, A * 4, H, W)."""
        cls_s, reg_s = head_outputs(batch.student_outputs[self.student_source],
                                    self.student_source)
        cls_t, reg_t = head_outputs(batch.teacher_outputs[teacher_id][self.teacher_source],
                                    self.teacher_source)
        return (_head(batch.student, self.student_source),
                _head(batch.teachers[teacher_id], self.teacher_source), cls_s, reg_s, cls_t,
                reg_t)


@DISTILL_TERMS.register_module(name='dense_cls')
class DenseClsTerm(DenseHeadTerm):
    """Class scores anchor by anchor (``input_kind='dense_cls'``, ``ClassificationKDLoss``): the
    loss gets both heads' logits, (M, K) with M = N * anchors of the batch."""

    def teacher_loss(self, teacher_id: int, batch: TermBatch) -> Tensor:
        head, _, cls_s, _, cls_t, _ = self._outputs(teacher_id, batch)
        num_classes = head.cls_out_channels  # equal for both heads, checked at build time
        logits_s = flatten_levels(cls_s, num_classes)
        logits_t = flatten_levels(cls_t, num_classes).to(logits_s.dtype)
        return self.loss(logits_s, logits_t)


@DISTILL_TERMS.register_module(name='dense_box')
class DenseBoxTerm(DenseHeadTerm):
    """Boxes anchor by anchor (``input_kind='dense_box'``, ``BoxRegressionKDLoss``): both heads'
    regressions are decoded on the shared anchors by each head's own ``bbox_coder``; the loss
    gets the (M, 4) boxes in input pixels and, as item weights, the teacher's highest class
    probability (M,)."""

    def teacher_loss(self, teacher_id: int, batch: TermBatch) -> Tensor:
        head, teacher_head, cls_s, reg_s, cls_t, reg_t = self._outputs(teacher_id, batch)
        logits_t = flatten_levels(cls_t, head.cls_out_channels).to(cls_s[0].dtype)
        anchors = torch.cat(head.prior_generator.grid_priors(
            [c.shape[-2:] for c in cls_s], device=cls_s[0].device))
        anchors = anchors.repeat(cls_s[0].shape[0], 1)
        boxes_s = head.bbox_coder.decode(anchors, flatten_levels(reg_s, 4))
        boxes_t = teacher_head.bbox_coder.decode(
            anchors, flatten_levels(reg_t, 4).to(boxes_s.dtype))
        probs_t = (logits_t.sigmoid() if getattr(teacher_head, 'use_sigmoid_cls', True) else
                   logits_t.softmax(-1)[:, :-1])
        return self.loss(boxes_s, boxes_t, probs_t.max(-1).values)

def _head(detector: nn.Module, source: str) -> nn.Module:
    """The head module a source names."""
    return resolve_submodule(detector, parse_source(detector, source)[0])
