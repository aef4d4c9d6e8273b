"""Backbones registered in ``mmdet.registry.MODELS``."""
from .shifted_patch_embed import ShiftedPatchEmbed
from .timm_vit import TimmViT
from .windowed_attention import WindowedAttention

# ShiftedPatchEmbed and WindowedAttention are building blocks of TimmViT, importable from here
# but not registered: only TimmViT is a backbone.
__all__ = ['TimmViT']
