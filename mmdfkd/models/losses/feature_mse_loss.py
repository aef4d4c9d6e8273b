"""FitNet-style mean squared error between matched feature maps."""
import math
from typing import Optional

import torch.nn.functional as F
from mmdet.registry import MODELS
from torch import Tensor, nn

from .utils import WEIGHT_SUM_EPS, check_loss_weight, check_same_shape, check_weight_shape

__all__ = ['FeatureMSELoss']


@MODELS.register_module()
class FeatureMSELoss(nn.Module):
    """Mean squared error between a student and a teacher feature map (FitNets, Romero et al.
    ICLR 2015), optionally weighted by a foreground map.

    Without ``weight`` the loss is the mean of ``(s - t)^2`` over all N*C*H*W elements. With a
    weight map w of shape (N, 1, H, W) (e.g. 1 inside teacher boxes, a smaller value outside) it
    is ``sum(w * (s - t)^2) / max(C * sum(w), 1e-6)``: the mean over elements, each position
    counted w times. All-zero weights give a zero loss.

    With ``normalize=True`` the C-vector at each position of both maps is first rescaled to L2
    norm sqrt(C) (root mean square 1 per element), so the loss at a position becomes
    ``2 - 2 * cos(s, t)`` whatever C is: it compares feature directions and ignores the
    magnitude gap between a CNN teacher and a ViT student. An all-zero vector stays zero.

    Args:
        loss_weight (float): Multiplier of the loss, >= 0. Defaults to 1.0.
        normalize (bool): Compare per-position directions instead of raw values, see above.
            Defaults to False.

    Raises:
        ValueError: If ``loss_weight < 0``.
    """

    input_kind: str = 'feature'
    # The distiller's fg_mask (foreground weighting from teacher boxes) applies to this loss.
    accepts_weight: bool = True

    def __init__(self, loss_weight: float = 1.0, normalize: bool = False) -> None:
        super().__init__()
        self.loss_weight = check_loss_weight('FeatureMSELoss', loss_weight)
        self.normalize = normalize

    def forward(self, student: Tensor, teacher: Tensor,
                weight: Optional[Tensor] = None) -> Tensor:
        """Compute the loss for one feature level.

        Args:
            student (Tensor): Student map of shape (N, C, H, W).
            teacher (Tensor): Teacher map of the same shape; detached here.
            weight (Tensor, optional): Non-negative position weights of shape (N, 1, H, W);
                detached here. Defaults to None (plain mean).

        Returns:
            Tensor: Scalar loss, times ``loss_weight``.

        Raises:
            ValueError: If the shapes of student and teacher, or of the weight, do not match.
        """
        check_same_shape(type(self).__name__, student, teacher, '(N, C, H, W)')
        teacher = teacher.detach()
        num_channels = student.shape[1]
        if self.normalize:
            scale = math.sqrt(num_channels)
            student = F.normalize(student, dim=1) * scale
            teacher = F.normalize(teacher, dim=1) * scale
        squared_error = (student - teacher).pow(2)
        if weight is None:
            loss = squared_error.mean()
        else:
            n, _, h, w = student.shape
            check_weight_shape(type(self).__name__, weight, (n, 1, h, w), '(N, 1, H, W)')
            weight = weight.detach()
            loss = (squared_error * weight).sum() / (
                weight.sum() * num_channels).clamp(min=WEIGHT_SUM_EPS)
        return loss * self.loss_weight
