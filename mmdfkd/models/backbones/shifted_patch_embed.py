"""Shifted patch tokenization (SPT) as a drop-in timm patch embedding."""
import torch
import torch.nn.functional as F
from timm.layers import PatchEmbed
from torch import nn

from .patch_tokens import format_tokens, pad_to_patches

__all__ = ['ShiftedPatchEmbed']


class ShiftedPatchEmbed(PatchEmbed):
    """Shifted patch tokenization from "Vision Transformer for Small-Size Datasets" (Lee et al.
    2021).

    The image is concatenated along channels with four copies of itself shifted by half a patch
    in the four diagonal directions (zeros enter at the borders), so each token sees a 2x larger
    neighbourhood. Every flattened patch of ``5 * in_chans * p * p`` values is layer-normalised,
    then linearly projected to ``embed_dim``.

    It accepts timm ``PatchEmbed``'s constructor arguments and keeps its size bookkeeping
    (``grid_size``, ``dynamic_feat_size``, ``set_input_size``), so it is passed to a timm
    ``VisionTransformer`` as ``embed_layer``. The projection is kept as timm's ``proj`` Conv2d
    (with ``5 * in_chans`` input channels) and applied as the equivalent linear map after the
    normalisation; pretrained 3-channel patch-embedding weights therefore do not fit it.
    """

    def __init__(self, *args, in_chans: int = 3, **kwargs) -> None:
        super().__init__(*args, in_chans=5 * in_chans, **kwargs)
        p_h, p_w = self.patch_size
        self.patch_norm = nn.LayerNorm(5 * in_chans * p_h * p_w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Tokenize.

        Args:
            x (torch.Tensor): Images of shape (B, C, H, W). H and W must be multiples of the
                patch size unless the layer was built with ``dynamic_img_pad=True``, which pads
                the bottom and right.

        Returns:
            torch.Tensor: Tokens of shape (B, H / p, W / p, D) for ``output_fmt='NHWC'``,
            (B, D, H / p, W / p) for NCHW, or (B, H * W / p^2, D) when ``flatten`` is set.
        """
        p_h, p_w = self.patch_size
        H, W = x.shape[-2:]
        s_h, s_w = p_h // 2, p_w // 2
        padded = F.pad(x, (s_w, s_w, s_h, s_h))
        shifted = [padded[..., dy:dy + H, dx:dx + W]
                   for dy in (0, 2 * s_h) for dx in (0, 2 * s_w)]
        x = pad_to_patches(torch.cat([x] + shifted, dim=1), self.patch_size,
                           self.dynamic_img_pad)
        B, C = x.shape[:2]
        g_h, g_w = x.shape[2] // p_h, x.shape[3] // p_w
        # (B, C, gH, p, gW, p) -> (B, gH, gW, C * p * p): the layout of the conv weight's
        # (in_chans, p, p) dimensions, so the conv equals this linear map.
        patches = x.reshape(B, C, g_h, p_h, g_w, p_w).permute(0, 2, 4, 1, 3, 5).flatten(3)
        x = F.linear(self.patch_norm(patches), self.proj.weight.flatten(1), self.proj.bias)
        return self.norm(format_tokens(x, self.flatten, self.output_fmt, 'ShiftedPatchEmbed'))
