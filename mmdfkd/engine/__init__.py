"""Engine components: optimizer-wrapper constructors and hooks."""
from .optimizers import *  # noqa: F401,F403
from .optimizers import __all__ as _optimizers

__all__ = [*_optimizers]
