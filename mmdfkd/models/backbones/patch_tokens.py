"""Input padding and output layout shared by this project's timm patch embeddings."""
from typing import Tuple

import torch
import torch.nn.functional as F
from timm.layers import Format


def pad_to_patches(x: torch.Tensor, patch_size: Tuple[int, int],
                   dynamic_img_pad: bool) -> torch.Tensor:
    """Pads images at the bottom and right to whole patches, as timm's ``PatchEmbed`` does.

    Args:
        x: Images of shape (B, C, H, W).
        patch_size: Patch (height, width).
        dynamic_img_pad: Pad; if False, H and W must already be multiples of the patch size.

    Raises:
        ValueError: If H or W is not a multiple of the patch size and padding is off.
    """
    p_h, p_w = patch_size
    H, W = x.shape[-2:]
    if dynamic_img_pad:
        return F.pad(x, (0, -W % p_w, 0, -H % p_h))
    if H % p_h or W % p_w:
        raise ValueError(
            f'input size {H}x{W} is not a multiple of the patch size {p_h}x{p_w}; pad it or '
            f'build the layer with dynamic_img_pad=True')
    return x


def format_tokens(tokens: torch.Tensor, flatten: bool, output_fmt: Format,
                  owner: str) -> torch.Tensor:
    """Tokens of shape (B, gH, gW, D) in the layout a timm ``PatchEmbed`` was built for.

    Returns:
        (B, gH * gW, D) when ``flatten`` is set, else (B, D, gH, gW) for NCHW or the input for
        NHWC.

    Raises:
        ValueError: For another ``output_fmt``, naming ``owner``.
    """
    if flatten:
        return tokens.flatten(1, 2)
    if output_fmt == Format.NCHW:
        return tokens.permute(0, 3, 1, 2)
    if output_fmt != Format.NHWC:
        raise ValueError(f'{owner} supports NHWC, NCHW or flattened output, got {output_fmt}')
    return tokens
