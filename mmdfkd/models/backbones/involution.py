"""Involution (Li et al., CVPR 2021): a spatial kernel generated per pixel, shared by channels."""
import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from torch import nn

__all__ = ['Involution']


class Involution(nn.Module):
    """Involution, from "Involution: Inverting the Inherence of Convolution for Visual Recognition".

    Convolution shares one kernel over all positions and has one per output channel; involution
    inverts this: a K x K kernel is generated from the feature vector at every output position
    and shared by the ``group_channels`` channels of each of the G = C / ``group_channels``
    groups. The output keeps the input's C channels.

    Kernel generation, per output pixel: the input is averaged over ``stride`` x ``stride`` cells
    when ``stride > 1``, then a 1x1 conv (C -> C / ``reduction_ratio``, no bias), the norm and the
    activation, then a 1x1 conv with bias (C / ``reduction_ratio`` -> K * K * G). The kernel of
    group g at offset (u, v) is channel ``g * K * K + u * K + v`` of that map. Application: the
    K x K neighbourhoods of the input (zero-padded by (K - 1) // 2, taken every ``stride`` pixels)
    are weighted by the kernel of their group and summed.

    Pure PyTorch (``F.unfold``): the unfolded input holds K * K copies of the input, so memory
    grows with K * K. Parameter names (``conv1.conv``, ``conv1.bn``, ``conv2.conv``) are those of
    the published code (github.com/d-li14/involution), whose checkpoints therefore load. Unlike
    the published code, the average pooling rounds up, so that odd input sizes work with
    ``stride > 1``; at even sizes the two agree.

    Args:
        channels (int): Input and output channels C; a multiple of ``group_channels`` and of
            ``reduction_ratio``.
        kernel_size (int): Odd kernel side K. Defaults to 7 (published).
        stride (int): Stride of the kernel windows and of the kernel-generation pooling.
            Defaults to 1.
        group_channels (int): Channels that share one generated kernel. Defaults to 16
            (published).
        reduction_ratio (int): Channel reduction of the kernel-generation bottleneck. Defaults to
            4 (published).
        norm_cfg (dict): Norm after the first kernel-generation conv. Defaults to
            ``dict(type='BN')`` (published).
        act_cfg (dict): Activation after that norm. Defaults to ``dict(type='ReLU')``
            (published).

    Attributes:
        groups (int): Number of kernel groups G.
    """

    def __init__(self,
                 channels: int,
                 kernel_size: int = 7,
                 stride: int = 1,
                 group_channels: int = 16,
                 reduction_ratio: int = 4,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='ReLU')) -> None:
        super().__init__()
        for name, value in (('channels', channels), ('kernel_size', kernel_size),
                            ('stride', stride), ('group_channels', group_channels),
                            ('reduction_ratio', reduction_ratio)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f'Involution {name} must be a positive integer, got {value!r}')
        if kernel_size % 2 == 0:
            raise ValueError(f'Involution kernel_size must be odd, so that the (kernel_size - 1) '
                             f'// 2 padding centres each window on its pixel; got {kernel_size}, '
                             f'use e.g. {kernel_size - 1} or {kernel_size + 1}')
        if channels % group_channels:
            raise ValueError(f'Involution channels={channels} is not divisible by group_channels='
                             f'{group_channels}; make channels a multiple of {group_channels} or '
                             f'pick a group_channels that divides {channels}')
        if channels % reduction_ratio:
            raise ValueError(f'Involution channels={channels} is not divisible by reduction_ratio='
                             f'{reduction_ratio}; pick a reduction_ratio that divides {channels}')
        self.channels = channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.group_channels = group_channels
        self.groups = channels // group_channels

        # Rounding up gives ceil(H / stride) kernels, as many as unfold gives windows.
        self.pool = nn.AvgPool2d(stride, stride, ceil_mode=True) if stride > 1 else nn.Identity()
        self.conv1 = ConvModule(channels, channels // reduction_ratio, 1, norm_cfg=norm_cfg,
                                act_cfg=act_cfg)
        self.conv2 = ConvModule(channels // reduction_ratio, kernel_size**2 * self.groups, 1,
                                norm_cfg=None, act_cfg=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Applies the involution.

        Args:
            x (torch.Tensor): Features of shape (B, C, H, W).

        Returns:
            torch.Tensor: Features of shape (B, C, ceil(H / stride), ceil(W / stride)).
        """
        kernel = self.conv2(self.conv1(self.pool(x)))  # (B, G * K * K, H', W')
        B, _, H, W = kernel.shape
        K2 = self.kernel_size**2
        kernel = kernel.view(B, self.groups, 1, K2, H, W)
        windows = F.unfold(x, self.kernel_size, padding=(self.kernel_size - 1) // 2,
                           stride=self.stride)  # (B, C * K * K, H' * W'), channel-major
        windows = windows.view(B, self.groups, self.group_channels, K2, H, W)
        return (kernel * windows).sum(dim=3).view(B, self.channels, H, W)
