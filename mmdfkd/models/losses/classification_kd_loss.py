"""Knowledge distillation of dense classification logits."""
from typing import Optional

import torch.nn.functional as F
from mmdet.registry import MODELS
from torch import Tensor, nn

from .utils import (check_loss_weight, check_same_shape, check_weight_shape, weighted_mean,
                    zero_loss)

__all__ = ['ClassificationKDLoss']


@MODELS.register_module()
class ClassificationKDLoss(nn.Module):
    """Soft-label distillation of classification logits at matched anchors or locations
    (Hinton et al. 2015, per anchor).

    * ``mode='sigmoid'`` (focal-loss heads such as RetinaNet, FCOS, ATSS): each of the K
      classes is a binary problem; the loss of an item is the binary cross entropy of
      ``sigmoid(s / T)`` against the soft target ``sigmoid(t / T)``, summed over K. It is not
      zero when student and teacher agree (the target's entropy remains) but its gradient is.
    * ``mode='softmax'`` (R-CNN style heads, K including the background class): the loss of
      an item is ``KL(softmax(t / T) || softmax(s / T))`` summed over K.

    Item losses are averaged over the M items, or with ``weight`` (e.g. teacher confidence)
    as ``sum(w * l) / max(sum(w), 1e-6)``, then multiplied by ``T**2`` (which keeps gradient
    magnitudes independent of T) and ``loss_weight``. M == 0 gives a zero loss.

    Args:
        mode (str): ``'sigmoid'`` or ``'softmax'``, see above. Defaults to ``'sigmoid'``.
        temperature (float): Temperature T, > 0. Defaults to 1.0.
        loss_weight (float): Multiplier of the loss, >= 0. Defaults to 1.0.

    Raises:
        ValueError: If ``mode`` is not one of the valid modes, ``temperature <= 0`` or
            ``loss_weight < 0``.
    """

    input_kind: str = 'dense_cls'
    valid_modes = ('sigmoid', 'softmax')

    def __init__(self, mode: str = 'sigmoid', temperature: float = 1.0,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if mode not in self.valid_modes:
            raise ValueError(f'ClassificationKDLoss mode must be one of {self.valid_modes} '
                             f"('sigmoid' for focal-loss heads, 'softmax' for R-CNN style "
                             f'heads), got {mode!r}')
        if temperature <= 0:
            raise ValueError(
                f'ClassificationKDLoss needs a positive temperature, got {temperature}')
        self.mode = mode
        self.temperature = temperature
        self.loss_weight = check_loss_weight('ClassificationKDLoss', loss_weight)

    def forward(self, student_logits: Tensor, teacher_logits: Tensor,
                weight: Optional[Tensor] = None) -> Tensor:
        """Compute the loss over matched items.

        Args:
            student_logits (Tensor): Student logits of shape (M, K).
            teacher_logits (Tensor): Teacher logits of the same shape; detached here.
            weight (Tensor, optional): Non-negative item weights of shape (M,); detached here.
                Defaults to None (plain mean).

        Returns:
            Tensor: Scalar loss, times ``loss_weight``.

        Raises:
            ValueError: If the shapes of the logits, or of the weight, do not match.
        """
        check_same_shape(type(self).__name__, student_logits, teacher_logits, '(M, K)')
        num_items = student_logits.shape[0]
        if weight is not None:
            check_weight_shape(type(self).__name__, weight, (num_items,), '(M,)')
            weight = weight.detach()
        if num_items == 0:
            return zero_loss(student_logits)
        student_logits = student_logits / self.temperature
        teacher_logits = teacher_logits.detach() / self.temperature
        if self.mode == 'sigmoid':
            item_loss = F.binary_cross_entropy_with_logits(
                student_logits, teacher_logits.sigmoid(), reduction='none').sum(dim=1)
        else:
            item_loss = F.kl_div(F.log_softmax(student_logits, dim=1),
                                 F.log_softmax(teacher_logits, dim=1), reduction='none',
                                 log_target=True).sum(dim=1)
        return weighted_mean(item_loss, weight) * self.temperature**2 * self.loss_weight
