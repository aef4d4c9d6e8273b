"""Record the outputs of named submodules during a forward pass."""
from typing import Any, Dict, Iterable

from torch import nn


class ModuleOutputRecorder:
    """Context manager that records the forward outputs of submodules addressed by name.

    Forward hooks are registered on entry and removed on exit, so the model's code stays
    untouched and nothing lingers after the pass.

    Example:
        >>> with ModuleOutputRecorder(detector, ['neck', 'bbox_head']) as outputs:
        ...     detector.loss(inputs, data_samples)
        >>> neck_levels = outputs['neck']  # tuple of (N, C, H, W) tensors

    Args:
        model: The model owning the submodules.
        names: Submodule names as given by ``model.named_modules()`` (``'neck'``,
            ``'bbox_head'``, ``'roi_head.bbox_head'``).

    Raises:
        KeyError: If a name is not a submodule of ``model``; the message lists the top-level
            children.
    """

    def __init__(self, model: nn.Module, names: Iterable[str]) -> None:
        self.model = model
        self.names = list(dict.fromkeys(names))
        for name in self.names:
            resolve_submodule(model, name)
        self.outputs: Dict[str, Any] = {}
        self._handles: list = []

    def __enter__(self) -> Dict[str, Any]:
        self.outputs.clear()
        for name in self.names:
            module = resolve_submodule(self.model, name)
            self._handles.append(module.register_forward_hook(self._hook(name)))
        return self.outputs

    def __exit__(self, *exc_info) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, name: str):

        def record(module: nn.Module, args: tuple, output: Any) -> None:
            # A module called twice in one pass (e.g. a head's loss then predict) keeps the
            # first output, which is the one computed from the recorded inputs.
            self.outputs.setdefault(name, output)

        return record


def resolve_submodule(model: nn.Module, name: str) -> nn.Module:
    """Returns ``model``'s submodule called ``name`` or raises a KeyError that lists the options.

    Args:
        model: The model to search.
        name: Dotted submodule name.

    Returns:
        The submodule.
    """
    try:
        return model.get_submodule(name)
    except AttributeError:
        children = ', '.join(n for n, _ in model.named_children())
        raise KeyError(f'{type(model).__name__} has no submodule {name!r}; its top-level '
                       f'submodules are: {children}.') from None
