"""ViTDet's simple feature pyramid: multi-scale maps from one single-scale ViT map."""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule, build_activation_layer, build_norm_layer
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch import nn

__all__ = ['SimpleFeaturePyramid']


@MODELS.register_module()
class SimpleFeaturePyramid(BaseModule):
    """Simple feature pyramid of ViTDet (Li et al. 2022, "Exploring Plain Vision Transformer
    Backbones for Object Detection").

    From the last map of a plain ViT (stride s, usually 16), each scale factor builds one level:

    * 4: 2x2 stride-2 deconvolution to C/2 channels, norm, activation, 2x2 stride-2
      deconvolution to C/4 channels (stride s/4);
    * 2: 2x2 stride-2 deconvolution to C/2 channels (stride s/2);
    * 1: the map itself (stride s);
    * 0.5: 2x2 stride-2 max pooling (stride 2s, ceil mode).

    Each level then goes through a 1x1 and a 3x3 convolution to ``out_channels``, each followed by
    the norm layer. Levels beyond ``len(scale_factors)`` (up to ``num_outs``) each halve the
    previous one, by a 3x3 stride-2 convolution with norm (``add_extra_convs``, as RetinaNet's P6
    and P7) or by max pooling with kernel 1 and stride 2 (as ViTDet's and Faster R-CNN's P6).

    The default norm is GroupNorm, which does not depend on the batch size (synthetic batches are
    small). A backbone map whose channel count differs from ``in_channels`` is an error at the
    first forward pass.

    Args:
        in_channels (int): Channels C of the backbone map.
        out_channels (int): Channels of every output level. Defaults to 256.
        scale_factors (Sequence[float]): Levels to build, in decreasing order, from
            {4, 2, 1, 0.5}. Defaults to (4.0, 2.0, 1.0, 0.5), strides 4/8/16/32 for a stride-16
            ViT.
        num_outs (int, optional): Total number of output levels; None means
            ``len(scale_factors)``. Defaults to None.
        add_extra_convs (bool): Build the extra levels with stride-2 convolutions instead of
            max pooling. Defaults to False.
        norm_cfg (dict): Norm layer config (mmcv). Defaults to GroupNorm with 32 groups.
        act_cfg (dict): Activation between the two deconvolutions of scale 4. Defaults to GELU.
        init_cfg (dict, optional): mmengine init config. Defaults to None.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int = 256,
                 scale_factors: Sequence[float] = (4.0, 2.0, 1.0, 0.5),
                 num_outs: Optional[int] = None,
                 add_extra_convs: bool = False,
                 norm_cfg: dict = dict(type='GN', num_groups=32, requires_grad=True),
                 act_cfg: dict = dict(type='GELU'),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        scale_factors = tuple(float(s) for s in scale_factors)
        if not scale_factors or any(s not in (4.0, 2.0, 1.0, 0.5) for s in scale_factors) \
                or list(scale_factors) != sorted(set(scale_factors), reverse=True):
            raise ValueError(f'scale_factors must be distinct values from (4, 2, 1, 0.5) in '
                             f'decreasing order, got {scale_factors}')
        num_outs = len(scale_factors) if num_outs is None else num_outs
        if num_outs < len(scale_factors):
            raise ValueError(f'num_outs={num_outs} is less than the {len(scale_factors)} '
                             f'scale_factors {scale_factors}')
        if 4.0 in scale_factors and in_channels % 4:
            raise ValueError(f'scale factor 4 needs in_channels divisible by 4, got {in_channels}')
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.scale_factors = scale_factors
        self.num_outs = num_outs
        self.add_extra_convs = add_extra_convs

        self.stages = nn.ModuleList()
        for scale in scale_factors:
            if scale == 4.0:
                _check_groups(norm_cfg, in_channels // 2)
                resample = nn.Sequential(
                    nn.ConvTranspose2d(in_channels, in_channels // 2, 2, stride=2),
                    build_norm_layer(norm_cfg, in_channels // 2)[1],
                    build_activation_layer(act_cfg),
                    nn.ConvTranspose2d(in_channels // 2, in_channels // 4, 2, stride=2))
                channels = in_channels // 4
            elif scale == 2.0:
                resample = nn.ConvTranspose2d(in_channels, in_channels // 2, 2, stride=2)
                channels = in_channels // 2
            elif scale == 1.0:
                resample = nn.Identity()
                channels = in_channels
            else:
                resample = nn.MaxPool2d(2, stride=2, ceil_mode=True)
                channels = in_channels
            _check_groups(norm_cfg, out_channels)
            self.stages.append(nn.Sequential(
                resample,
                ConvModule(channels, out_channels, 1, norm_cfg=norm_cfg, act_cfg=None),
                ConvModule(out_channels, out_channels, 3, padding=1, norm_cfg=norm_cfg,
                           act_cfg=None)))
        num_extra = num_outs - len(scale_factors)
        self.extra_convs = nn.ModuleList(
            ConvModule(out_channels, out_channels, 3, stride=2, padding=1, norm_cfg=norm_cfg,
                       act_cfg=None)
            for _ in range(num_extra if add_extra_convs else 0))

    def forward(self, inputs: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, ...]:
        """Build the pyramid.

        Args:
            inputs (Sequence[torch.Tensor]): Exactly one map of shape (B, in_channels, H, W),
                as returned by a backbone with a single out index.

        Returns:
            tuple[torch.Tensor]: ``num_outs`` maps of shape (B, out_channels, H_i, W_i), in
            increasing stride: H_i = H * scale_factors[i] (rounded up), then halved (rounded up)
            for each extra level.

        Raises:
            ValueError: If ``inputs`` holds more than one map, or its channel count is not
                ``in_channels``.
        """
        if len(inputs) != 1:
            raise ValueError(f'SimpleFeaturePyramid takes one backbone map, got {len(inputs)}; '
                             f'set the backbone out_indices to a single block')
        x = inputs[0]
        if x.shape[1] != self.in_channels:
            channels = x.shape[1]
            raise ValueError(
                f'SimpleFeaturePyramid in_channels={self.in_channels} does not match the '
                f'{channels} channels of the backbone map; set the neck\'s '
                f'in_channels={channels}, the backbone\'s embed dim')
        outs: List[torch.Tensor] = [stage(x) for stage in self.stages]
        for i in range(self.num_outs - len(self.stages)):
            outs.append(self.extra_convs[i](outs[-1]) if self.add_extra_convs
                        else F.max_pool2d(outs[-1], 1, stride=2))
        return tuple(outs)


def _check_groups(norm_cfg: dict, channels: int) -> None:
    """Raise if a GroupNorm config cannot normalise ``channels`` channels."""
    groups = norm_cfg.get('num_groups')
    if norm_cfg['type'] == 'GN' and channels % groups:
        raise ValueError(f'GroupNorm with num_groups={groups} cannot normalise {channels} '
                         f'channels of SimpleFeaturePyramid; pick num_groups dividing {channels}')
