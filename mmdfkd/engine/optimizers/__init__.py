"""Optimizer-wrapper constructors registered in ``mmdet.registry.OPTIM_WRAPPER_CONSTRUCTORS``."""
from .layer_decay_optimizer_constructor import LayerDecayOptimWrapperConstructor

__all__ = ['LayerDecayOptimWrapperConstructor']
