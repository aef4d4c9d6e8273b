"""Knowledge distillation of decoded boxes: L1 plus GIoU against the teacher's boxes."""
from typing import Optional

from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox_overlaps
from torch import Tensor, nn

from .utils import (check_loss_weight, check_same_shape, check_weight_shape, weighted_mean,
                    zero_loss)

__all__ = ['BoxRegressionKDLoss']

# Floor of a teacher box side, in pixels, when the L1 term is normalised by it.
MIN_BOX_SIDE = 1.0


@MODELS.register_module()
class BoxRegressionKDLoss(nn.Module):
    """Distillation of decoded boxes: the student's boxes regress the teacher's, as in DETR's
    box loss (L1 + GIoU) with the teacher's boxes as targets.

    The loss of an item is ``l1_weight * L1 + giou_weight * (1 - GIoU)``. L1 is the mean of
    the four absolute coordinate differences. With ``normalize_l1=True`` the x differences are
    divided by the teacher box's width and the y differences by its height (each floored at
    1 px), so L1 is relative to the box size: small and large boxes count alike and the term
    is on the same scale as GIoU (an offset of one box side gives 1). With
    ``normalize_l1=False`` it is in pixels. Item losses are averaged over the M items, or with
    ``weight`` (e.g. teacher confidence) as ``sum(w * l) / max(sum(w), 1e-6)``, and
    multiplied by ``loss_weight``. M == 0 or all-zero weights give a zero loss that keeps the
    student's graph.

    Args:
        l1_weight (float): Weight of the L1 term, >= 0. Defaults to 1.0.
        giou_weight (float): Weight of the ``1 - GIoU`` term, >= 0. Defaults to 2.0.
        normalize_l1 (bool): Divide the L1 term by the teacher box size, see above. Defaults
            to True.
        loss_weight (float): Multiplier of the loss, >= 0. Defaults to 1.0.

    Raises:
        ValueError: If a weight is negative.
    """

    input_kind: str = 'dense_box'

    def __init__(self, l1_weight: float = 1.0, giou_weight: float = 2.0,
                 normalize_l1: bool = True, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.l1_weight = check_loss_weight('BoxRegressionKDLoss', l1_weight, 'l1_weight')
        self.giou_weight = check_loss_weight('BoxRegressionKDLoss', giou_weight, 'giou_weight')
        self.normalize_l1 = normalize_l1
        self.loss_weight = check_loss_weight('BoxRegressionKDLoss', loss_weight)

    def forward(self, student_boxes: Tensor, teacher_boxes: Tensor,
                weight: Optional[Tensor] = None) -> Tensor:
        """Compute the loss over matched boxes.

        Args:
            student_boxes (Tensor): Student boxes (x1, y1, x2, y2) in pixels, shape (M, 4).
            teacher_boxes (Tensor): Teacher boxes of the same shape; detached here.
            weight (Tensor, optional): Non-negative item weights of shape (M,); detached here.
                Defaults to None (plain mean).

        Returns:
            Tensor: Scalar loss, times ``loss_weight``.

        Raises:
            ValueError: If the shapes of the boxes, or of the weight, do not match.
        """
        check_same_shape(type(self).__name__, student_boxes, teacher_boxes, '(M, 4)')
        if student_boxes.shape[1] != 4:
            raise ValueError(f'BoxRegressionKDLoss expects boxes of shape (M, 4) as (x1, y1, '
                             f'x2, y2), got {tuple(student_boxes.shape)}')
        num_boxes = student_boxes.shape[0]
        if weight is not None:
            check_weight_shape(type(self).__name__, weight, (num_boxes,), '(M,)')
            weight = weight.detach()
        if num_boxes == 0:
            return zero_loss(student_boxes)
        teacher_boxes = teacher_boxes.detach()
        abs_diff = (student_boxes - teacher_boxes).abs()
        if self.normalize_l1:
            sides = (teacher_boxes[:, 2:] - teacher_boxes[:, :2]).clamp(min=MIN_BOX_SIDE)
            abs_diff = abs_diff / sides.repeat(1, 2)
        l1 = abs_diff.mean(dim=1)
        giou = bbox_overlaps(student_boxes, teacher_boxes, mode='giou', is_aligned=True)
        item_loss = self.l1_weight * l1 + self.giou_weight * (1 - giou)
        return weighted_mean(item_loss, weight) * self.loss_weight
