"""Hooks registered in ``mmdet.registry.HOOKS``."""
from .random_state_hook import RandomStateHook
from .synthetic_image_generator_hook import SyntheticImageGeneratorHook

__all__ = ['RandomStateHook', 'SyntheticImageGeneratorHook']
