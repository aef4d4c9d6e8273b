"""Models: ViT backbones, necks, distillers and distillation losses.

Importing this package registers every module into ``mmdet.registry.MODELS``.
"""
from .backbones import *  # noqa: F401,F403
from .backbones import __all__ as _backbones
from .necks import *  # noqa: F401,F403
from .necks import __all__ as _necks

__all__ = [*_backbones, *_necks]
