"""PKD: MSE between feature maps normalised per channel (Pearson correlation)."""
from typing import Optional

import torch.nn.functional as F
from mmdet.registry import MODELS
from torch import Tensor, nn

from .utils import check_loss_weight

__all__ = ['PKDLoss']

# Added to the standard deviation so that a constant channel normalises to zeros.
STD_EPS = 1e-6


@MODELS.register_module()
class PKDLoss(nn.Module):
    """Distillation by Pearson correlation of features (Cao et al., "PKD: General
    Distillation Framework for Object Detectors via Pearson Correlation Coefficient",
    NeurIPS 2022).

    Each channel of each map is normalised to zero mean and unit variance over the batch and
    the positions (N, H, W): ``(x - mean) / (std + 1e-6)``; the loss is the MSE of the two
    normalised maps (mean over all elements) divided by 2, i.e. ``1 - r`` averaged over
    channels, with r the Pearson correlation of a student and teacher channel. It is therefore
    invariant to a positive scale and any shift of each channel of either map, which lets a
    student with another feature magnitude (a ViT) learn from a CNN teacher.

    The std is the population std (divides by N*H*W), so a normalised channel has exactly unit
    variance and a single-element channel normalises to 0 instead of NaN; mmrazor's
    ``PKDLoss`` uses the unbiased std, which differs by a factor sqrt(n / (n - 1)).

    Unlike the other feature losses, this one matches spatial sizes itself: when H, W differ,
    the student map is bilinearly resized to the teacher's size (``resize_stu=True``) or the
    teacher map to the student's (``resize_stu=False``), as in mmrazor.

    Args:
        loss_weight (float): Multiplier of the loss, >= 0. Defaults to 1.0.
        resize_stu (bool): Which map to resize when the spatial sizes differ. Defaults to True
            (the student).

    Raises:
        ValueError: If ``loss_weight < 0``.
    """

    input_kind: str = 'feature'

    def __init__(self, loss_weight: float = 1.0, resize_stu: bool = True) -> None:
        super().__init__()
        self.loss_weight = check_loss_weight('PKDLoss', loss_weight)
        self.resize_stu = resize_stu

    @staticmethod
    def normalize(feat: Tensor) -> Tensor:
        """Normalise each channel over the batch and positions.

        Args:
            feat (Tensor): Map of shape (N, C, H, W).

        Returns:
            Tensor: Map of shape (N, C, H, W), each channel with zero mean and unit variance.
        """
        mean = feat.mean(dim=(0, 2, 3), keepdim=True)
        std = feat.std(dim=(0, 2, 3), keepdim=True, unbiased=False)
        return (feat - mean) / (std + STD_EPS)

    def forward(self, student: Tensor, teacher: Tensor,
                weight: Optional[Tensor] = None) -> Tensor:
        """Compute the loss for one feature level.

        Args:
            student (Tensor): Student map of shape (N, C, Hs, Ws).
            teacher (Tensor): Teacher map of shape (N, C, Ht, Wt); detached here.
            weight (None): Must be None: the normalisation is over the whole batch, so a
                position weight has no place in it. Accepted only so that every feature loss
                has the same call signature.

        Returns:
            Tensor: Scalar loss, times ``loss_weight``.

        Raises:
            ValueError: If ``weight`` is given, or N or C differ, or an input is not 4-D.
        """
        if weight is not None:
            raise ValueError('PKDLoss takes no weight map: it normalises each channel over the '
                             'whole batch and all positions. Pass weight=None, or use '
                             'FeatureMSELoss for a foreground-weighted feature loss')
        if student.dim() != 4 or teacher.dim() != 4 or student.shape[:2] != teacher.shape[:2]:
            raise ValueError(
                f'PKDLoss expects student (N, C, Hs, Ws) and teacher (N, C, Ht, Wt) with the '
                f'same N and C, got student {tuple(student.shape)} and teacher '
                f'{tuple(teacher.shape)}; the distiller must match channels with its adapter')
        teacher = teacher.detach()
        if student.shape[2:] != teacher.shape[2:]:
            if self.resize_stu:
                student = F.interpolate(student, size=teacher.shape[2:], mode='bilinear',
                                        align_corners=False)
            else:
                teacher = F.interpolate(teacher, size=student.shape[2:], mode='bilinear',
                                        align_corners=False)
        loss = F.mse_loss(self.normalize(student), self.normalize(teacher)) / 2
        return loss * self.loss_weight
