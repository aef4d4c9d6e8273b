"""Backbones registered in ``mmdet.registry.MODELS``."""
from .involution import Involution
from .rednet import RedNet
from .shifted_patch_embed import ShiftedPatchEmbed
from .timm_vit import TimmViT
from .windowed_attention import WindowedAttention

# Involution, ShiftedPatchEmbed and WindowedAttention are building blocks of RedNet and TimmViT,
# importable from here but not registered: only RedNet and TimmViT are backbones.
__all__ = ['RedNet', 'TimmViT']
