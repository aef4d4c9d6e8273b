"""Move images between raw pixel space and the normalized input of a detector."""
import torch
import torch.nn.functional as F
from mmengine.model import ImgDataPreprocessor


def denormalize(inputs: torch.Tensor, preprocessor: ImgDataPreprocessor) -> torch.Tensor:
    """Undoes ``preprocessor``'s normalization and channel flip.

    Args:
        inputs: Images as ``preprocessor`` outputs them, shape (N, 3, H, W).
        preprocessor: The data preprocessor that produced ``inputs``.

    Returns:
        Images in the data loader's pixel space and channel order (BGR, 0-255 for mmdet's
        loaders), shape (N, 3, H, W). Padding is kept.
    """
    images = inputs
    if getattr(preprocessor, '_enable_normalize', False):
        images = images * preprocessor.std + preprocessor.mean
    if preprocessor._channel_conversion:
        images = images.flip(1)
    return images


def normalize_like(images: torch.Tensor, preprocessor: ImgDataPreprocessor) -> torch.Tensor:
    """Normalizes loader-space images the way ``preprocessor`` would, differentiably.

    The channel order is flipped if the preprocessor converts it (``bgr_to_rgb`` or
    ``rgb_to_bgr``), its mean is subtracted and std divided, and the batch is padded to its
    ``pad_size_divisor`` with its ``pad_value``.

    Args:
        images: Images in the data loader's pixel space and channel order, (N, 3, H, W).
        preprocessor: The detector's data preprocessor.

    Returns:
        The detector's input, (N, 3, H', W') with H', W' padded to the size divisor.
    """
    if preprocessor._channel_conversion:
        images = images.flip(1)
    if getattr(preprocessor, '_enable_normalize', False):
        images = (images - preprocessor.mean) / preprocessor.std
    divisor = preprocessor.pad_size_divisor
    pad_h = (-images.shape[-2]) % divisor
    pad_w = (-images.shape[-1]) % divisor
    if pad_h or pad_w:
        images = F.pad(images, (0, pad_w, 0, pad_h), value=float(preprocessor.pad_value))
    return images


def renormalize(inputs: torch.Tensor, source: ImgDataPreprocessor,
                target: ImgDataPreprocessor) -> torch.Tensor:
    """Maps images normalized by ``source`` (the student's) to ``target``'s (a teacher's)
    normalization, channel order and padding.

    Args:
        inputs: Images as ``source`` outputs them, shape (N, 3, H, W).
        source: The preprocessor that produced ``inputs``.
        target: The preprocessor whose output is wanted.

    Returns:
        Images as ``target`` would have produced them, (N, 3, H', W').
    """
    return normalize_like(denormalize(inputs, source), target)
