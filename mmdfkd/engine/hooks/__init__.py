"""Hooks registered in ``mmdet.registry.HOOKS``."""
from .image_synthesis_hook import ImageSynthesisHook
from .random_state_hook import RandomStateHook

__all__ = ['ImageSynthesisHook', 'RandomStateHook']
