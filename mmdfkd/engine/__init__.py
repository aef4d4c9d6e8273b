"""Engine components: optimizer-wrapper constructors and hooks."""
from .hooks import *  # noqa: F401,F403
from .hooks import __all__ as _hooks
from .optimizers import *  # noqa: F401,F403
from .optimizers import __all__ as _optimizers

__all__ = [*_hooks, *_optimizers]
