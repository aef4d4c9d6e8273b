"""Lanczos resampling of image batches: separable, differentiable, as two matrix products."""
import math
from numbers import Integral
from typing import Sequence

import torch
from torch import Tensor


def lanczos_resize(images: Tensor, size: Sequence[int], order: int = 3) -> Tensor:
    """Resizes images with a Lanczos kernel of the given order.

    The kernel is ``sinc(x) * sinc(x / a)`` for ``|x| < a`` (``a = order``), 0 elsewhere.
    Pixel centres are aligned as ``F.interpolate(..., align_corners=False)`` aligns them:
    output pixel ``i`` samples the input at ``(i + 0.5) * in / out - 0.5``. When an axis is
    shrunk the kernel is stretched by the shrink factor, so it also low-pass filters
    (antialiasing, as PIL does). The weights of each output pixel sum to 1; taps beyond the
    border read the border pixel (replicate padding). Lanczos overshoots near edges, so the
    output can leave the input's value range: clamp it if the range matters.

    Each axis is resampled by a precomputed (out, in) weight matrix, so the resize is two
    matrix products: differentiable with respect to ``images``, on their device and dtype.

    Args:
        images: (N, C, H, W) floating-point images.
        size: The output size (h, w), positive integers.
        order: The kernel's order ``a`` (lobes on each side), an integer >= 1; 3 and 5 are
            usual. Defaults to 3.

    Returns:
        (N, C, h, w) images, same dtype and device as ``images``.

    Raises:
        ValueError: If ``images`` is not a 4-D floating-point tensor, or ``size`` or ``order``
            is not as described.
    """
    if isinstance(order, bool) or not isinstance(order, Integral) or order < 1:
        raise ValueError(f'order must be an integer >= 1 (3 and 5 are usual), got {order!r}.')
    if (isinstance(size, (str, bytes)) or not isinstance(size, Sequence) or len(size) != 2
            or not all(isinstance(s, Integral) and not isinstance(s, bool) and s >= 1
                       for s in size)):
        raise ValueError(f'size must be (h, w), two positive integers, got {size!r}.')
    if images.dim() != 4 or not images.is_floating_point():
        raise ValueError('images must be a 4-D (N, C, H, W) floating-point tensor, got '
                         f'shape {tuple(images.shape)} of {images.dtype}; convert integer '
                         'images with .float() first.')
    out_h, out_w = int(size[0]), int(size[1])
    in_h, in_w = images.shape[-2:]
    rows = _axis_weights(in_h, out_h, order).to(images.device, images.dtype)
    cols = _axis_weights(in_w, out_w, order).to(images.device, images.dtype)
    return rows @ images @ cols.T


def _axis_weights(in_size: int, out_size: int, order: int) -> Tensor:
    """The weight matrix that resamples one axis of ``in_size`` pixels to ``out_size`` pixels
    (see :func:`lanczos_resize` for the kernel, alignment and borders).

    Args:
        in_size: Input pixels along the axis.
        out_size: Output pixels along the axis.
        order: The kernel's order.

    Returns:
        (out_size, in_size) float64 weights on the CPU, each row summing to 1.
    """
    scale = in_size / out_size
    stretch = max(scale, 1.0)  # shrinking widens the kernel: it then low-pass filters too
    support = order * stretch
    centers = (torch.arange(out_size, dtype=torch.float64) + 0.5) * scale - 0.5
    offsets = torch.arange(-math.ceil(support), math.ceil(support) + 1, dtype=torch.float64)
    taps = centers.floor()[:, None] + offsets  # (out, taps) source pixels around each centre
    x = (taps - centers[:, None]) / stretch
    weights = torch.where(x.abs() < order, torch.sinc(x) * torch.sinc(x / order),
                          torch.zeros_like(x))
    weights = weights / weights.sum(dim=1, keepdim=True)
    index = taps.long().clamp(0, in_size - 1)  # replicate the border pixels
    return torch.zeros(out_size, in_size, dtype=torch.float64).scatter_add_(1, index, weights)
