"""A convolutional stem under a timm ViT's patch embedding (a hybrid ViT's tokenizer)."""
from typing import Optional

import torch
from mmdet.registry import MODELS
from timm.layers import PatchEmbed
from torch import nn

from .patch_tokens import format_tokens, pad_to_patches

__all__ = ['ConvStemPatchEmbed']


class ConvStemPatchEmbed(PatchEmbed):
    """Patch embedding that tokenizes the feature map of a convolutional stem.

    The image goes through ``stem`` (any mmdet backbone config, e.g. ResNet-18's stem and first
    stage: ``dict(type='ResNet', depth=18, num_stages=1, out_indices=(0,))``), whose last output
    map is cut into patches and projected to ``embed_dim`` by timm's ``proj`` Conv2d. The
    ``patch_size`` the ViT sees is the total stride (stem stride times the patch side on the
    stem's map), so timm's bookkeeping (``grid_size``, ``dynamic_feat_size``, the position
    embedding) is unchanged. This is the tokenizer of timm's hybrid ViTs ("Early convolutions
    help transformers see better", Xiao et al. 2021), which on the demo lets a ViT student
    learn much more from synthetic images (README, Quality). The stem can be trained, or
    inherited from a CNN teacher (``DetectionDistiller(inherit=[dict(student=..., teacher=
    'backbone')])``) and frozen: the same final mAP on the demo, with a faster start and fewer
    trained parameters.

    The stem's stride and channels are measured once at construction, on a zero image.

    Args:
        stem (dict): mmdet backbone config of the stem.
        img_size (int | tuple, optional): As timm ``PatchEmbed``.
        patch_size (int): Total stride of a token, a multiple of the stem's stride.
        in_chans (int): Image channels.
        embed_dim (int): Token channels.
        **kwargs: Further timm ``PatchEmbed`` arguments (``bias``, ``dynamic_img_pad``,
            ``output_fmt``, ``norm_layer``, ...).

    Raises:
        ValueError: If ``patch_size`` is not a multiple of the stem's stride.
    """

    def __init__(self, stem: dict, img_size: Optional[int] = 224, patch_size: int = 16,
                 in_chans: int = 3, embed_dim: int = 768, **kwargs) -> None:
        stem_module = MODELS.build(stem)
        probe_side = 16 * patch_size
        with torch.no_grad():
            was_training = stem_module.training
            stem_module.eval()
            out = _last(stem_module(torch.zeros(1, in_chans, probe_side, probe_side)))
            stem_module.train(was_training)
        stem_stride = probe_side // out.shape[-1]
        if patch_size % stem_stride:
            raise ValueError(
                f'ConvStemPatchEmbed: patch_size {patch_size} is not a multiple of the stem\'s '
                f'stride {stem_stride}; set the ViT\'s patch_size to a multiple of {stem_stride} '
                f'or give the stem fewer downsampling stages.')
        super().__init__(img_size=img_size, patch_size=patch_size, in_chans=out.shape[1],
                         embed_dim=embed_dim, **kwargs)
        side = patch_size // stem_stride
        self.proj = nn.Conv2d(out.shape[1], embed_dim, kernel_size=side, stride=side,
                              bias=self.proj.bias is not None)
        self.stem = stem_module
        self.stem_stride = stem_stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens of the stem's map of images ``x`` (B, C, H, W), in timm ``PatchEmbed``'s
        layouts: (B, H / p, W / p, D) for NHWC, (B, D, H / p, W / p) for NCHW, (B, H * W / p^2,
        D) when flattened. H and W must be multiples of the patch size p unless the layer pads
        (``dynamic_img_pad=True``: bottom and right)."""
        x = self.proj(_last(self.stem(pad_to_patches(x, self.patch_size, self.dynamic_img_pad))))
        return self.norm(format_tokens(x.permute(0, 2, 3, 1), self.flatten, self.output_fmt,
                                       'ConvStemPatchEmbed'))


def _last(features) -> torch.Tensor:
    """The last map of a backbone's output (a tensor, or a tuple of them)."""
    return features[-1] if isinstance(features, (tuple, list)) else features
