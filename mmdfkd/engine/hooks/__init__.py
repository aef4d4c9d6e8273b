"""Hooks registered in ``mmdet.registry.HOOKS``."""
from .synthetic_image_generator_hook import SyntheticImageGeneratorHook

__all__ = ['SyntheticImageGeneratorHook']
