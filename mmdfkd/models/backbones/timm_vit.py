"""timm Vision Transformers (ViT, DeiT) as mmdet backbones."""
import os.path as osp
import pickle
from functools import partial
from typing import Optional, Sequence, Tuple

import timm
import torch
from mmdet.registry import MODELS
from mmengine.logging import print_log
from mmengine.model import BaseModule
from timm.models import load_state_dict
from timm.models.vision_transformer import VisionTransformer, checkpoint_filter_fn

from mmdfkd.utils.checkpoint_files import (CheckpointFileError, check_checkpoint_file,
                                           checkpoint_problem)

from .conv_stem_patch_embed import ConvStemPatchEmbed
from .shifted_patch_embed import ShiftedPatchEmbed
from .windowed_attention import WindowedAttention

__all__ = ['TimmViT']


@MODELS.register_module()
class TimmViT(BaseModule):
    """A timm Vision Transformer, by name, returning NCHW feature maps of chosen blocks.

    The network is timm's own ``VisionTransformer`` (any ViT-family name: ``deit_tiny_patch16_224``,
    ``vit_small_patch16_224``, ...), built with ``dynamic_img_size`` and ``dynamic_img_pad`` so any
    input height and width works: the position embedding is resampled to the token grid and the
    image is zero-padded at the bottom and right to whole patches. Features come from timm's
    ``forward_intermediates``; blocks after the last selected one, the final norm and the
    classifier are dropped with ``prune_intermediate_layers``.

    Windowed attention as in ViTDet (:class:`WindowedAttention`): blocks not listed in
    ``global_attn_indices`` attend within ``window_size`` x ``window_size`` token windows, reusing
    the block's timm weights, so their cost grows linearly with the image area.

    Small-data options from "Vision Transformer for Small-Size Datasets" (Lee et al. 2021):
    shifted patch tokenization (``spt``, :class:`ShiftedPatchEmbed`) and locality self-attention
    (``lsa``: learnable temperature and diagonal masking, in every block).

    A convolutional stem (``conv_stem``, :class:`ConvStemPatchEmbed`) makes it a hybrid ViT:
    patches are cut from the stem's feature map instead of the image. On the demo such a
    student learns much more from synthetic images than the pure ViT; its stem can be trained
    or inherited from a CNN teacher (``DetectionDistiller(inherit=...)``).

    Weights: timm initialises them at construction. ``init_cfg=dict(type='Pretrained',
    checkpoint=PATH)`` loads a local timm/DeiT checkpoint (``.pth`` or ``.safetensors``) in
    :meth:`init_weights`, through timm's ``checkpoint_filter_fn`` (position embedding and patch
    kernel resizing). Nothing is ever downloaded.

    Args:
        model_name (str): timm model name. Defaults to ``'deit_tiny_patch16_224'``.
        out_indices (Sequence[int]): Blocks whose outputs are returned; negative values count
            from the last block. Defaults to ``(-1,)``.
        window_size (int): Window side in tokens for windowed blocks; 0 gives global attention in
            every block (timm's attention, cost quadratic in the area). Defaults to 14.
        global_attn_indices (Sequence[int]): Blocks that keep global attention when
            ``window_size > 0``. Defaults to ``(2, 5, 8, 11)`` (ViTDet, 12 blocks).
        drop_path_rate (float): Stochastic depth rate, increasing linearly to this value at the
            last block. Defaults to 0.
        frozen_stages (int): -1 trains everything; 0 freezes the patch embedding, position
            embedding and prefix tokens; n > 0 also freezes the first n blocks. Frozen modules
            stay in eval mode. Defaults to -1.
        with_cp (bool): Gradient checkpointing of the blocks (timm ``set_grad_checkpointing``).
            The windowed blocks read the token grid of the latest forward pass, so with this on,
            run each backward before the next forward at another input size. Defaults to False.
        spt (bool): Shifted patch tokenization. Defaults to False.
        lsa (bool): Locality self-attention in every block. Defaults to False.
        conv_stem (dict, optional): mmdet backbone config of a convolutional stem whose last
            output map is tokenized (its stride must divide the patch size), e.g.
            ``dict(type='ResNet', depth=18, num_stages=1, out_indices=(0,), frozen_stages=1,
            norm_eval=True)``. Not with ``spt``. Defaults to None (patches of the image).
        timm_kwargs (dict, optional): Further keyword arguments for ``timm.create_model``, e.g.
            ``img_size`` (the grid the position embedding is stored at). Defaults to None.
        init_cfg (dict, optional): None, or ``dict(type='Pretrained', checkpoint=PATH)``.
            Defaults to None.

    Attributes:
        out_channels (int): Channels of every output map (the embedding dimension).
        num_layers (int): Number of blocks kept.
    """

    def __init__(self,
                 model_name: str = 'deit_tiny_patch16_224',
                 out_indices: Sequence[int] = (-1,),
                 window_size: int = 14,
                 global_attn_indices: Sequence[int] = (2, 5, 8, 11),
                 drop_path_rate: float = 0.,
                 frozen_stages: int = -1,
                 with_cp: bool = False,
                 spt: bool = False,
                 lsa: bool = False,
                 conv_stem: Optional[dict] = None,
                 timm_kwargs: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if init_cfg is not None and (not isinstance(init_cfg, dict)
                                     or init_cfg.get('type') != 'Pretrained'
                                     or 'checkpoint' not in init_cfg):
            raise ValueError(
                f"TimmViT init_cfg must be None (timm's initialisation) or "
                f"dict(type='Pretrained', checkpoint=PATH), got {init_cfg}")
        super().__init__(init_cfg=init_cfg)
        if not timm.is_model(model_name):
            raise ValueError(
                f'unknown timm model {model_name!r}; pick a ViT from timm.list_models("vit_*") '
                f'or timm.list_models("deit*")')
        kwargs = dict(num_classes=0, dynamic_img_size=True, dynamic_img_pad=True,
                      drop_path_rate=drop_path_rate, **(timm_kwargs or {}))
        if spt and conv_stem is not None:
            raise ValueError('TimmViT: spt and conv_stem both replace the patch embedding; set '
                             'spt=False to tokenize the conv stem\'s map, or conv_stem=None.')
        if spt:
            kwargs['embed_layer'] = ShiftedPatchEmbed
        elif conv_stem is not None:
            kwargs['embed_layer'] = partial(ConvStemPatchEmbed, stem=conv_stem)
        try:
            vit = timm.create_model(model_name, pretrained=False, **kwargs)
        except TypeError as e:
            raise TypeError(
                f'could not build timm model {model_name!r} as a dynamic-size ViT ({e}); TimmViT '
                f'needs a timm VisionTransformer (vit_*, deit_*)') from e
        if not isinstance(vit, VisionTransformer):
            raise TypeError(
                f'timm built {type(vit).__name__} for {model_name!r}, not a VisionTransformer; '
                f'pick a vit_*/deit_* model (and unset TIMM_USE_NAFLEXVIT, which swaps the class)')

        depth = len(vit.blocks)
        for i in global_attn_indices if window_size > 0 else ():  # else every block is global
            if not 0 <= i < depth:
                raise ValueError(f'global_attn_indices has {i}, but {model_name} has blocks '
                                 f'0..{depth - 1}')
        self.out_indices = vit.prune_intermediate_layers(out_indices, prune_norm=True)
        for i, block in enumerate(vit.blocks):
            window = 0 if i in global_attn_indices else window_size
            if window or lsa:
                block.attn = WindowedAttention(block.attn, window_size=window, lsa=lsa)
        if frozen_stages > len(vit.blocks):
            raise ValueError(f'frozen_stages={frozen_stages} exceeds the {len(vit.blocks)} '
                             f'blocks kept for out_indices={tuple(out_indices)}')
        vit.set_grad_checkpointing(with_cp)

        self.vit = vit
        self.model_name = model_name
        self.frozen_stages = frozen_stages
        self.out_channels = vit.embed_dim
        self.num_layers = len(vit.blocks)
        self._freeze_stages()

    def get_layer_id(self, param_name: str) -> int:
        """Depth of a parameter, for layer-wise learning-rate decay.

        Args:
            param_name (str): Parameter name relative to this module, e.g.
                ``'vit.blocks.3.attn.qkv.weight'``.

        Returns:
            int: 0 for the embeddings (patch, position, prefix tokens), i + 1 for block i.
        """
        parts = param_name.split('.')
        if parts[:2] == ['vit', 'blocks']:
            return int(parts[2]) + 1
        return 0

    def _freeze_stages(self) -> None:
        if self.frozen_stages < 0:
            return
        vit = self.vit
        stem = [vit.patch_embed, vit.pos_drop, vit.patch_drop, vit.norm_pre]
        for module in stem + list(vit.blocks[:self.frozen_stages]):
            module.eval()
            for param in module.parameters():
                param.requires_grad = False
        for param in vit.parameters(recurse=False):
            param.requires_grad = False  # pos_embed and the prefix tokens

    def train(self, mode: bool = True) -> 'TimmViT':
        """Set train mode, keeping frozen modules in eval mode."""
        super().train(mode)
        self._freeze_stages()
        return self

    def init_weights(self) -> None:
        """Load ``init_cfg``'s local checkpoint; without one keep timm's initialisation.

        Raises:
            FileNotFoundError: The checkpoint file does not exist.
            RuntimeError: The checkpoint is truncated or corrupt, or holds pickled objects
                that ``weights_only=True`` refuses (they could run code).
            ValueError: No tensor of the checkpoint matches the model.
        """
        if self.init_cfg is None:
            return
        path = self.init_cfg['checkpoint']
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'TimmViT pretrained checkpoint {path!r} (init_cfg.checkpoint) does not exist; '
                f'weights are never downloaded: give the path of a local .pth or .safetensors '
                f'timm/DeiT checkpoint, or set init_cfg=None')
        # timm loads the file (its key choice and prefix cleaning), with weights_only=True:
        # checkpoints are untrusted. A .pth is first checked as every checkpoint the project
        # reads is (complete, CRCs); a .safetensors file holds no pickle.
        if not path.endswith('.safetensors'):
            try:
                check_checkpoint_file(path)
            except CheckpointFileError as exc:
                raise RuntimeError(
                    f'TimmViT pretrained checkpoint (init_cfg.checkpoint): {exc}. Give a '
                    'complete timm/DeiT checkpoint from a trusted source, or set '
                    'init_cfg=None.') from exc
        try:
            state_dict = load_state_dict(path, weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
            raise RuntimeError(
                f'TimmViT pretrained checkpoint (init_cfg.checkpoint): '
                f'{checkpoint_problem(path) or exc}. Give a complete timm/DeiT checkpoint from '
                'a trusted source, or set init_cfg=None.') from exc
        filter_fn = partial(checkpoint_filter_fn, adapt_layer_scale=True)
        state_dict = filter_fn(state_dict, self.vit)
        own = self.vit.state_dict()
        mismatched = [k for k, v in state_dict.items() if k in own and v.shape != own[k].shape]
        for k in mismatched:
            del state_dict[k]
        missing, unexpected = self.vit.load_state_dict(state_dict, strict=False)
        if len(state_dict) == len(unexpected):
            raise ValueError(
                f'checkpoint {path!r} matches no parameter of {self.model_name}: it has keys '
                f'like {sorted(state_dict)[:3] + mismatched[:3]}, the model expects keys like '
                f'{list(own)[:3]}; give a timm/DeiT checkpoint of this architecture')
        print_log(
            f'TimmViT: loaded {len(state_dict) - len(unexpected)} of {len(own)} tensors from '
            f'{path}; missing (kept initialised): {missing}; unexpected (ignored): {unexpected}; '
            f'shape mismatch (ignored): {mismatched}', logger='current')
        self._is_init = True

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Extract features.

        Args:
            x (torch.Tensor): Images of shape (B, 3, H, W), any H and W.

        Returns:
            tuple[torch.Tensor]: One map per ``out_indices`` entry, each of shape
            (B, out_channels, ceil(H / p), ceil(W / p)) for patch size p.
        """
        grid = self.vit.patch_embed.dynamic_feat_size(x.shape[-2:])
        for block in self.vit.blocks:
            if isinstance(block.attn, WindowedAttention):
                block.attn.grid_size = grid
        return tuple(self.vit.forward_intermediates(
            x, indices=self.out_indices, norm=False, output_fmt='NCHW', intermediates_only=True))
