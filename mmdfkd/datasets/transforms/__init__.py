"""Data pipeline transforms, registered in mmdet's ``TRANSFORMS``."""
from .lanczos_resize import LanczosResize

__all__ = ['LanczosResize']
