"""Teacher detections as targets of the student's own detection loss."""
from typing import List, Optional, Sequence

import torch
from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox_overlaps, get_box_tensor
from mmengine.structures import InstanceData
from torch import nn

from ..utils.box_fusion import weighted_box_fusion
from .utils import check_loss_weight


@MODELS.register_module()
class PseudoBoxLoss(nn.Module):
    """Trains the student's own head on the teachers' confident post-NMS detections.

    ``DetectionDistiller`` runs the teachers' ``predict``, calls :meth:`make_targets`, then the
    student's ``loss`` on those targets and scales the result by ``loss_weight``. The student's
    head loss is used as it is, so this works for any pair of heads (a RetinaNet teacher can
    teach an FCOS or a Faster R-CNN student).

    With several teachers the detections are combined by weighted box fusion (Solovyev et al.,
    2021): same-class boxes overlapping by more than ``fusion_iou_thr`` form a cluster whose box
    is the score-weighted mean and whose score is the weighted mean score, scaled down when
    fewer teachers than all found the object.

    Args:
        score_thr: Teacher detections scoring below this are dropped. Defaults to 0.3.
        fusion_iou_thr: IoU above which boxes of different teachers are fused. Defaults to
            0.55.
        keep_gt: Also keep the batch's own targets (real labels, or the boxes the synthetic
            images were made for); teacher boxes overlapping one of them by more than
            ``dedup_iou_thr`` are dropped. Defaults to False.
        dedup_iou_thr: See ``keep_gt``. Defaults to 0.5.
        loss_weight: Scale of the student's loss on these targets, >= 0. Defaults to 1.0.

    Raises:
        ValueError: If a threshold is outside [0, 1] or ``loss_weight < 0``.
    """

    input_kind = 'detections'

    def __init__(self,
                 score_thr: float = 0.3,
                 fusion_iou_thr: float = 0.55,
                 keep_gt: bool = False,
                 dedup_iou_thr: float = 0.5,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        for name, value in (('score_thr', score_thr), ('fusion_iou_thr', fusion_iou_thr),
                            ('dedup_iou_thr', dedup_iou_thr)):
            if not 0 <= value <= 1:
                raise ValueError(f'PseudoBoxLoss: {name} must be in [0, 1], got {value}.')
        self.score_thr = score_thr
        self.fusion_iou_thr = fusion_iou_thr
        self.keep_gt = keep_gt
        self.dedup_iou_thr = dedup_iou_thr
        self.loss_weight = check_loss_weight('PseudoBoxLoss', loss_weight)

    def make_targets(self, detections: Sequence[Sequence[InstanceData]],
                     teacher_weights: Sequence[float],
                     gt_instances: Optional[Sequence[InstanceData]] = None
                     ) -> List[InstanceData]:
        """Builds one image's targets per batch element.

        Args:
            detections: Per teacher, per image: ``InstanceData`` with ``bboxes`` (K, 4) in
                input pixels, ``scores`` (K,) and ``labels`` (K,), already in student labels.
            teacher_weights: One weight per teacher.
            gt_instances: Per image, the batch's own targets (used when ``keep_gt``).

        Returns:
            Per image, ``InstanceData`` with ``bboxes`` and ``labels``.
        """
        targets = []
        for i in range(len(detections[0])):
            per_teacher = [dets[i] for dets in detections]
            fused = weighted_box_fusion(per_teacher, teacher_weights, self.score_thr,
                                        self.fusion_iou_thr)
            if self.keep_gt and gt_instances is not None:
                fused = _merge_with_gt(gt_instances[i], fused, self.dedup_iou_thr)
            targets.append(InstanceData(bboxes=fused.bboxes, labels=fused.labels))
        return targets


def _merge_with_gt(gt: InstanceData, pseudo: InstanceData, iou_thr: float) -> InstanceData:
    """The ground truth plus the pseudo boxes that overlap no ground-truth box by more than
    ``iou_thr``."""
    gt_boxes = get_box_tensor(gt.bboxes).float()
    if len(gt) and len(pseudo):
        overlaps = bbox_overlaps(pseudo.bboxes.float(), gt_boxes)
        pseudo = pseudo[overlaps.max(dim=1).values <= iou_thr]
    return InstanceData(bboxes=torch.cat([gt_boxes, pseudo.bboxes.float()]),
                        labels=torch.cat([gt.labels, pseudo.labels]))
