"""Count the forward and backward passes of modules, per sample (the cost of synthesis)."""
from typing import Any, Dict, Optional, Sequence

import torch
from torch import Tensor, nn


class PassCounter:
    """Context manager that counts forward and backward passes through modules, per sample.

    A call of a watched module on a batch of B samples counts B forward passes; a gradient
    that reaches the input of such a call (``backward`` or ``torch.autograd.grad`` through
    the module) counts B backward passes. Forward hooks are registered on entry and removed
    on exit; a call made inside the block registers a hook on its input tensor (when that
    tensor requires a gradient), so its backward pass counts even if it runs after the block.
    Counts add up over the modules and over every use of the counter.

    A detector's passes are counted at its backbone: every pass runs it once, whether the
    detector runs ``loss``, ``predict`` or only ``extract_feat``.

    Example:
        >>> with PassCounter([teacher.backbone]) as passes:
        ...     synthesizer.synthesize(targets, rng)
        >>> passes.forward / len(targets)  # forward passes per image

    Args:
        modules: The modules whose calls are counted; the batch size of a call is the first
            dimension of its first tensor argument.

    Attributes:
        forward (int): Forward passes counted, in samples.
        backward (int): Backward passes counted, in samples.
    """

    def __init__(self, modules: Sequence[nn.Module]) -> None:
        self.modules = list(modules)
        self.forward = 0
        self.backward = 0
        self._handles: list = []

    def __enter__(self) -> 'PassCounter':
        for module in self.modules:
            self._handles.append(module.register_forward_hook(self._count, with_kwargs=True))
        return self

    def __exit__(self, *exc_info) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _count(self, module: nn.Module, args: tuple, kwargs: Dict[str, Any],
               output: Any) -> None:
        inputs = _first_tensor([*args, *kwargs.values()])
        if inputs is None:
            return
        batch = inputs.shape[0] if inputs.dim() else 1
        self.forward += batch
        if inputs.requires_grad and torch.is_grad_enabled():
            inputs.register_hook(lambda grad: self._count_backward(batch))

    def _count_backward(self, batch: int) -> None:
        self.backward += batch


def _first_tensor(values: Sequence[Any]) -> Optional[Tensor]:
    return next((value for value in values if isinstance(value, Tensor)), None)
