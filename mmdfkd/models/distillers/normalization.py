"""Convert a batch normalized for one detector into the input another detector expects."""
import torch
import torch.nn.functional as F
from mmengine.model import ImgDataPreprocessor


def renormalize(inputs: torch.Tensor, source: ImgDataPreprocessor,
                target: ImgDataPreprocessor) -> torch.Tensor:
    """Maps images normalized by ``source`` to images normalized by ``target``.

    The data loader yields images in one channel order (BGR for mmdet's loaders); each
    preprocessor may flip it (``bgr_to_rgb`` or ``rgb_to_bgr``) before subtracting its mean and
    dividing by its std. The batch is de-normalized with ``source``'s statistics, flipped if the
    two preprocessors disagree on the channel order, normalized with ``target``'s statistics and
    padded to ``target``'s size divisor.

    Args:
        inputs: Images as ``source`` outputs them, shape (N, 3, H, W).
        source: The preprocessor that produced ``inputs`` (the student's).
        target: The preprocessor whose output is wanted (a teacher's).

    Returns:
        Images as ``target`` would have produced them, shape (N, 3, H', W') with H' and W'
        padded up to multiples of ``target.pad_size_divisor``.
    """
    images = inputs
    if getattr(source, '_enable_normalize', False):
        images = images * source.std + source.mean
    if source._channel_conversion != target._channel_conversion:
        images = images.flip(1)
    if getattr(target, '_enable_normalize', False):
        images = (images - target.mean) / target.std
    divisor = target.pad_size_divisor
    pad_h = (-images.shape[-2]) % divisor
    pad_w = (-images.shape[-1]) % divisor
    if pad_h or pad_w:
        images = F.pad(images, (0, pad_w, 0, pad_h), value=float(target.pad_value))
    return images

