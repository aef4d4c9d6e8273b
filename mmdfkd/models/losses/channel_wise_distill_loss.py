"""Channel-wise distillation (CWD): KL between per-channel spatial distributions."""
from typing import Optional

import torch.nn.functional as F
from mmdet.registry import MODELS
from torch import Tensor, nn

from .utils import check_loss_weight, check_same_shape

__all__ = ['ChannelWiseDistillLoss']


@MODELS.register_module()
class ChannelWiseDistillLoss(nn.Module):
    """Channel-wise knowledge distillation (Shu et al., "Channel-wise Knowledge Distillation
    for Dense Prediction", ICCV 2021).

    Each channel of each sample is turned into a distribution over its H*W positions by a
    softmax at temperature T; the loss is KL(teacher || student) summed over positions,
    averaged over the N*C channels and multiplied by ``T**2`` (so gradients keep their scale
    when T changes) and ``loss_weight``. This matches mmrazor's ``ChannelWiseDivergence``.

    Args:
        temperature (float): Softmax temperature T, > 0. Defaults to 1.0.
        loss_weight (float): Multiplier of the loss, >= 0. Defaults to 1.0.

    Raises:
        ValueError: If ``temperature <= 0`` or ``loss_weight < 0``.
    """

    input_kind: str = 'feature'

    def __init__(self, temperature: float = 1.0, loss_weight: float = 1.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(
                f'ChannelWiseDistillLoss needs a positive temperature, got {temperature}')
        self.temperature = temperature
        self.loss_weight = check_loss_weight('ChannelWiseDistillLoss', loss_weight)

    def forward(self, student: Tensor, teacher: Tensor,
                weight: Optional[Tensor] = None) -> Tensor:
        """Compute the loss for one feature level.

        Args:
            student (Tensor): Student map of shape (N, C, H, W).
            teacher (Tensor): Teacher map of the same shape; detached here.
            weight (None): Must be None; accepted only so that every feature loss has the same
                call signature.

        Returns:
            Tensor: Scalar loss, times ``loss_weight``.

        Raises:
            ValueError: If ``weight`` is given or the shapes differ.
        """
        if weight is not None:
            raise ValueError(
                'ChannelWiseDistillLoss takes no weight map: CWD already weights each position '
                "by the teacher's own spatial softmax. Pass weight=None, or use FeatureMSELoss "
                'for a foreground-weighted feature loss')
        check_same_shape(type(self).__name__, student, teacher, '(N, C, H, W)')
        n, c = student.shape[:2]
        log_p_student = F.log_softmax(student.flatten(2) / self.temperature, dim=2)
        log_p_teacher = F.log_softmax(teacher.detach().flatten(2) / self.temperature, dim=2)
        kl = F.kl_div(log_p_student, log_p_teacher, reduction='sum', log_target=True)
        return kl / (n * c) * self.temperature**2 * self.loss_weight
