"""Models: ViT backbones, necks, distillers and distillation losses.

Importing this package registers every module into ``mmdet.registry.MODELS``.
"""
from .backbones import *  # noqa: F401,F403
from .backbones import __all__ as _backbones
from .distillers import *  # noqa: F401,F403
from .distillers import __all__ as _distillers
from .losses import *  # noqa: F401,F403
from .losses import __all__ as _losses
from .necks import *  # noqa: F401,F403
from .necks import __all__ as _necks
from .synthesis import BoxConditionedGenerator

__all__ = [*_backbones, *_distillers, *_losses, *_necks, 'BoxConditionedGenerator']
