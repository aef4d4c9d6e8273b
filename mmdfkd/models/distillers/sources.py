"""How a distillation term names what it reads from a detector: a *source*.

A source is a submodule name as ``model.named_modules()`` gives it (``'neck'``,
``'bbox_head'``, ``'roi_head.bbox_head'``), which stands for the module's whole output,
optionally followed by

- ``':N'``: item N of the output (``'bbox_head:1'``, a dense head's box regressions), or
- ``'.cls'`` / ``'.reg'``: items 0 and 1 of a dense head's output, its class scores and box
  regressions (``'bbox_head.cls'``), when no submodule has that dotted name.
"""
from difflib import get_close_matches
from typing import Any, Dict, Optional, Sequence, Tuple

from torch import Tensor, nn

from ..utils.detector_runs import record_outputs
from ..utils.recorder import resolve_submodule

# Output items a source may name after a dot: a dense head returns (cls_scores, bbox_preds).
_OUTPUT_ALIASES = {'cls': 0, 'reg': 1}


def parse_source(model: nn.Module, spec: str) -> Tuple[str, Optional[int]]:
    """Splits a source into the submodule to record and the item of its output to take.

    Args:
        model: The detector the source belongs to.
        spec: The source, e.g. ``'neck'``, ``'bbox_head.cls'`` or ``'bbox_head:1'``.

    Returns:
        ``(submodule name, item index)``; the index is None for the whole output.

    Raises:
        KeyError: If ``model`` has no such submodule (from :func:`resolve_submodule`).
        ValueError: If the text after ``':'`` is not an integer.
    """
    if ':' in spec:
        name, index = spec.rsplit(':', 1)
        resolve_submodule(model, name)
        return name, int(index)
    try:
        resolve_submodule(model, spec)
        return spec, None
    except KeyError:
        head, _, alias = spec.rpartition('.')
        if alias in _OUTPUT_ALIASES and head:
            resolve_submodule(model, head)
            return head, _OUTPUT_ALIASES[alias]
        raise


def check_source(model: nn.Module, spec: str, entry: str, owner: str) -> None:
    """Raises if ``spec`` is not a source of ``model``.

    Args:
        model: The student or a teacher.
        spec: The source as configured, e.g. ``'neck'`` or ``'bbox_head.cls'``.
        entry: The loss entry and key, for the message, e.g.
            ``"model.distill_losses[0] (PKDLoss): student='nek'"``.
        owner: Which model, for the message: ``'the student'`` or ``'teacher N'``.

    Raises:
        ValueError: Naming the entry, the model, close submodule names and its top-level
            submodules.
    """
    try:
        parse_source(model, spec)
    except (KeyError, ValueError):
        close = get_close_matches(spec.split(':')[0], [n for n, _ in model.named_modules() if n],
                                  n=3)
        children = ', '.join(repr(n) for n, _ in model.named_children())
        raise ValueError(
            f'{entry} names no submodule of {owner} ({type(model).__name__})'
            + (f'; did you mean {" or ".join(repr(c) for c in close)}?' if close else '.')
            + f' Its top-level submodules are {children}. A source is a submodule name '
            "('neck', 'bbox_head', 'roi_head.bbox_head'), optionally with ':N' (item N of its "
            "output) or '.cls' / '.reg' (a dense head's scores or boxes).") from None


def select_sources(model: nn.Module, specs: Sequence[str],
                   recorded: Dict[str, Any]) -> Dict[str, Any]:
    """The sources' values from the recorded outputs of their submodules.

    Args:
        model: The detector the sources belong to.
        specs: Sources.
        recorded: ``{submodule name: output}``, as a :class:`ModuleOutputRecorder` gives them.

    Returns:
        ``{source: output or output item}``.
    """
    out = {}
    for spec in specs:
        name, index = parse_source(model, spec)
        out[spec] = recorded[name] if index is None else recorded[name][index]
    return out


def source_modules(model: nn.Module, specs: Sequence[str]) -> list:
    """The submodule names to record for ``specs``, each once, in order."""
    return list(dict.fromkeys(parse_source(model, spec)[0] for spec in specs))


def record_sources(model: nn.Module, specs: Sequence[str], inputs: Tensor) -> Dict[str, Any]:
    """Runs ``model`` only as deep as ``specs`` need and returns their values.

    Args:
        model: A detector.
        specs: Its sources.
        inputs: Its normalized input, (N, 3, H, W).

    Returns:
        ``{source: output or output item}``.
    """
    return select_sources(model, specs, record_outputs(model, source_modules(model, specs),
                                                       inputs))
