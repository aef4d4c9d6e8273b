"""Input checks and reductions shared by the distillation losses."""
import math
import numbers
from typing import Optional, Tuple

from torch import Tensor

# Floor of a weight sum, so that all-zero weights give a zero loss instead of 0 / 0.
WEIGHT_SUM_EPS = 1e-6


def check_loss_weight(owner: str, value: float, key: str = 'loss_weight') -> float:
    """Checks a loss weight from a config: a finite number, not negative.

    Args:
        owner (str): Who takes the weight, for the message (e.g. ``'PKDLoss'``).
        value (float): The weight as configured.
        key (str): Its config key, for the message. Defaults to ``'loss_weight'``.

    Returns:
        float: The weight.

    Raises:
        ValueError: If ``value`` is not a finite number >= 0: training would maximize a loss
            with a negative weight, and a non-finite one makes every step non-finite.
    """
    if (not isinstance(value, numbers.Real) or isinstance(value, bool)
            or not math.isfinite(value) or value < 0):
        raise ValueError(f'{owner}: {key} must be a finite number >= 0, got {value!r}. A '
                         'negative weight would make training maximize what it weights; 0 turns '
                         'it off.')
    return float(value)


def check_same_shape(loss_name: str, student: Tensor, teacher: Tensor, layout: str) -> None:
    """Raises if the student and teacher tensors do not have one and the same shape.

    Args:
        loss_name (str): Name of the calling loss, for the message.
        student (Tensor): Student tensor.
        teacher (Tensor): Teacher tensor.
        layout (str): Expected layout, e.g. ``'(N, C, H, W)'``; its number of comma-separated
            dimensions is the required ``ndim``.

    Raises:
        ValueError: If the shapes differ or do not have the layout's number of dimensions.
    """
    ndim = layout.count(',') + 1
    if student.shape != teacher.shape or student.dim() != ndim:
        raise ValueError(
            f'{loss_name} expects student and teacher of the same shape {layout}, got student '
            f'{tuple(student.shape)} and teacher {tuple(teacher.shape)}; the distiller must '
            f'match them (channel adapters, same levels, same anchors or locations) before '
            f'calling the loss')


def check_weight_shape(loss_name: str, weight: Tensor, expected: Tuple[int, ...],
                       layout: str) -> None:
    """Raises if a weight tensor does not have the expected shape.

    Args:
        loss_name (str): Name of the calling loss, for the message.
        weight (Tensor): The weight given to the loss.
        expected (tuple[int, ...]): Required shape.
        layout (str): The required shape in symbols, e.g. ``'(N, 1, H, W)'``.

    Raises:
        ValueError: If ``weight.shape != expected``.
    """
    if tuple(weight.shape) != tuple(expected):
        raise ValueError(f'{loss_name} expects weight of shape {layout} = {tuple(expected)}, '
                         f'got {tuple(weight.shape)}')


def weighted_mean(values: Tensor, weight: Optional[Tensor]) -> Tensor:
    """Mean of ``values``, or ``sum(w * v) / max(sum(w), WEIGHT_SUM_EPS)`` with weights.

    Args:
        values (Tensor): Per-item losses of shape (M,), M > 0.
        weight (Tensor, optional): Non-negative weights of shape (M,), already detached.

    Returns:
        Tensor: Scalar.
    """
    if weight is None:
        return values.mean()
    return (values * weight).sum() / weight.sum().clamp(min=WEIGHT_SUM_EPS)


def zero_loss(student: Tensor) -> Tensor:
    """A scalar zero that stays attached to the student's graph, so ``backward()`` works."""
    return student.sum() * 0


__all__ = ['check_loss_weight', 'check_same_shape', 'check_weight_shape', 'weighted_mean',
           'zero_loss', 'WEIGHT_SUM_EPS']
