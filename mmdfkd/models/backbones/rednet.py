"""RedNet (Li et al., CVPR 2021): a ResNet whose 3x3 convolutions and stem use involution."""
from typing import List, Optional, Sequence, Union

from mmcv.cnn import ConvModule, build_norm_layer
from mmdet.models.backbones.resnet import Bottleneck, ResNet
from mmdet.models.layers import ResLayer
from mmdet.registry import MODELS
from torch import nn

from .involution import Involution

__all__ = ['RedNet']


class InvolutionBottleneck(Bottleneck):
    """mmdet's ResNet bottleneck (1x1, 3x3, 1x1 convs, expansion 4) with an :class:`Involution`
    in place of the 3x3 conv, carrying the block's stride (``style='pytorch'``).

    Args:
        inplanes (int): Input channels.
        planes (int): Channels of the involution; the block outputs ``4 * planes``.
        involution_cfg (dict, optional): Further keyword arguments of the :class:`Involution`
            (``kernel_size``, ``group_channels``, ``reduction_ratio``, ``norm_cfg`` of its kernel
            generator); None keeps its defaults. Defaults to None.
        **kwargs: Arguments of mmdet's ``Bottleneck`` (``stride``, ``downsample``, ``norm_cfg``,
            ``with_cp``, ``init_cfg``, ...). The involution's kernel generator uses ``norm_cfg``
            unless ``involution_cfg`` names its own.
    """

    def __init__(self, inplanes: int, planes: int, involution_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        super().__init__(inplanes, planes, **kwargs)
        # Replaces the 3x3 conv that Bottleneck built, as mmdet's ResNeXt does.
        self.conv2 = Involution(planes, stride=self.conv2_stride,
                                **dict(dict(norm_cfg=self.norm_cfg), **(involution_cfg or {})))


@MODELS.register_module()
class RedNet(ResNet):
    """RedNet backbone: mmdet's ResNet with :class:`InvolutionBottleneck` blocks and an
    involution stem, returning the feature maps of the chosen stages (strides 4, 8, 16, 32).

    As published (github.com/d-li14/involution, ``rednet.py``): the stem is a 3x3 conv with
    stride 2 to ``stem_channels // 2`` channels, BN, ReLU, an involution (the same
    ``involution_cfg``, stride 1), BN, ReLU, a 3x3 conv to ``stem_channels``, BN, ReLU, then a
    3x3 max-pool with stride 2. Stage i has ``base_channels * 2**i`` involution channels and
    outputs four times as many (256, 512, 1024, 2048 for ``base_channels=64``). Every norm,
    including those inside the involutions' kernel generators, is built from ``norm_cfg``, so
    BatchNorm statistics exist throughout. State-dict keys and shapes are those of the published
    ``rednet.py``, so its checkpoints load through ``init_cfg=dict(type='Pretrained',
    checkpoint=PATH)`` (add ``prefix='backbone.'`` for a whole-classifier checkpoint).

    Freezing (``frozen_stages``), ``norm_eval``, gradient checkpointing and the forward pass are
    mmdet's ResNet's. With ``init_cfg=None``, convs get Kaiming init, norms weight 1, and with
    ``zero_init_residual`` the last norm of every block weight 0, as in the published code.

    Training: the published detection configs train RedNet detectors with a linear warm-up
    (2000 iterations from 0.001 of the learning rate) and, where the neck or head also uses
    involution, with gradient-norm clipping (``max_norm`` 40 or 5). Use both when training a
    RedNet detector, whose losses can otherwise become NaN.

    Args:
        depth (int): 26, 38, 50, 101 or 152; blocks per stage (1, 2, 4, 1), (2, 3, 5, 2),
            (3, 4, 6, 3), (3, 4, 23, 3), (3, 8, 36, 3).
        in_channels (int): Input image channels. Defaults to 3.
        stem_channels (int): Output channels of the stem; its involution has half as many, a
            multiple of the involution's ``group_channels``. Defaults to 64 (published).
        base_channels (int): Involution channels of the first stage, a multiple of
            ``group_channels``. Defaults to 64 (published).
        num_stages (int): Stages built, 1 to 4. Defaults to 4.
        strides (Sequence[int]): Stride of the first block of each stage. Defaults to
            ``(1, 2, 2, 2)``.
        out_indices (Sequence[int]): Stages whose outputs are returned, 0-based. Defaults to
            ``(0, 1, 2, 3)``.
        frozen_stages (int): -1 trains everything; 0 freezes the stem; n > 0 also freezes stages
            1..n. Frozen parts stay in eval mode. Defaults to -1.
        norm_cfg (dict): Norm layers. Defaults to ``dict(type='BN', requires_grad=True)``.
        norm_eval (bool): Keep every BatchNorm in eval mode (running statistics frozen) while
            training, for a pretrained backbone. Defaults to False, for training from scratch.
        with_cp (bool): Gradient checkpointing of each block, trading compute for the memory of
            the unfolded involution inputs. Defaults to False.
        zero_init_residual (bool): Initialise the last norm of every block to zero, so blocks
            start as identities. Defaults to True (published).
        involution_cfg (dict, optional): Further keyword arguments of every :class:`Involution`
            (``kernel_size``, ``group_channels``, ``reduction_ratio``, and ``norm_cfg`` of the
            kernel generators, ``norm_cfg`` above if not given); None keeps the published 7,
            16, 4. Defaults to None. A kernel generator with a per-image norm
            (``norm_cfg=dict(type='GN', num_groups=1)``) makes the generated kernels independent
            of the scale of the features, so an involution scales its output like a
            convolution, linearly, instead of quadratically: with BatchNorm there, a detector
            trained at batch 8 amplified the images whose features were larger than average
            from block to block in eval mode (running statistics), to 1e6 in stage 3.
        init_cfg (dict | list[dict], optional): mmengine initialisation, e.g.
            ``dict(type='Pretrained', checkpoint=PATH)``; None for the default above. Defaults to
            None.
    """

    arch_settings = {
        26: (InvolutionBottleneck, (1, 2, 4, 1)),
        38: (InvolutionBottleneck, (2, 3, 5, 2)),
        50: (InvolutionBottleneck, (3, 4, 6, 3)),
        101: (InvolutionBottleneck, (3, 4, 23, 3)),
        152: (InvolutionBottleneck, (3, 8, 36, 3)),
    }

    def __init__(self,
                 depth: int,
                 in_channels: int = 3,
                 stem_channels: int = 64,
                 base_channels: int = 64,
                 num_stages: int = 4,
                 strides: Sequence[int] = (1, 2, 2, 2),
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 zero_init_residual: bool = True,
                 involution_cfg: Optional[dict] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        if depth not in self.arch_settings:
            raise ValueError(f'RedNet depth must be one of {tuple(self.arch_settings)}, got '
                             f'{depth!r}')
        if not 1 <= num_stages <= 4:
            raise ValueError(f'RedNet num_stages must be 1 to 4, got {num_stages}')
        if len(strides) != num_stages:
            raise ValueError(f'RedNet strides={tuple(strides)} must give one stride per stage '
                             f'(num_stages={num_stages})')
        if not out_indices or not all(0 <= i < num_stages for i in out_indices):
            raise ValueError(f'RedNet out_indices={tuple(out_indices)} must be a non-empty list '
                             f'of stages 0..{num_stages - 1}')
        if not -1 <= frozen_stages <= num_stages:
            raise ValueError(f'RedNet frozen_stages={frozen_stages} must be -1 (nothing frozen) '
                             f'to num_stages={num_stages}')
        # Read by _make_stem_layer and make_res_layer, which ResNet.__init__ calls.
        self.involution_cfg = dict(involution_cfg or {})
        try:
            # deep_stem=True makes ResNet's forward and _freeze_stages use self.stem, which
            # _make_stem_layer builds as RedNet's stem.
            super().__init__(depth=depth, in_channels=in_channels, stem_channels=stem_channels,
                             base_channels=base_channels, num_stages=num_stages,
                             strides=strides, dilations=(1,) * num_stages,
                             out_indices=out_indices, deep_stem=True,
                             frozen_stages=frozen_stages, norm_cfg=norm_cfg, norm_eval=norm_eval,
                             with_cp=with_cp, zero_init_residual=zero_init_residual,
                             init_cfg=init_cfg)
        except ValueError as e:  # from an Involution: say which RedNet argument sets its width
            raise ValueError(
                f'{e} (in RedNet: the stem involution has stem_channels // 2 = '
                f'{stem_channels // 2} channels, stage i has base_channels * 2**i = '
                f'{[base_channels * 2**i for i in range(num_stages)]}; change stem_channels, '
                f'base_channels or involution_cfg)') from e
        if init_cfg is None and zero_init_residual:
            # ResNet zero-initialises the last norm of its own Bottleneck class only.
            for layer_name in self.res_layers:
                for block in getattr(self, layer_name):
                    block.init_cfg = dict(type='Constant', val=0, override=dict(name='norm3'))

    def make_res_layer(self, **kwargs) -> ResLayer:
        """Builds one stage of :class:`InvolutionBottleneck` blocks.

        Args:
            **kwargs: Arguments of mmdet's ``ResLayer``, from ``ResNet.__init__``.

        Returns:
            ResLayer: The stage.
        """
        return ResLayer(involution_cfg=self.involution_cfg, **kwargs)

    def _make_stem_layer(self, in_channels: int, stem_channels: int) -> None:
        """Builds ``self.stem`` (two convs around an involution) and ``self.maxpool``.

        Args:
            in_channels (int): Input image channels.
            stem_channels (int): Output channels of the stem.
        """
        mid = stem_channels // 2
        self.stem = nn.Sequential(
            ConvModule(in_channels, mid, 3, stride=2, padding=1, conv_cfg=self.conv_cfg,
                       norm_cfg=self.norm_cfg),
            Involution(mid, stride=1, **dict(dict(norm_cfg=self.norm_cfg),
                                             **self.involution_cfg)),
            build_norm_layer(self.norm_cfg, mid)[1],
            nn.ReLU(inplace=True),
            ConvModule(mid, stem_channels, 3, padding=1, conv_cfg=self.conv_cfg,
                       norm_cfg=self.norm_cfg))
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
