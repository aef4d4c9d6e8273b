"""Initialize student submodules from a teacher's (the "inheriting strategy" of FGD).

A student whose head (or neck) has the teacher's structure can start from the teacher's weights
instead of random ones: the head then already maps teacher-like features to boxes, and
distillation only has to make the student's features teacher-like. Normalization layers may
differ in type (a GroupNorm student head inheriting from a BatchNorm teacher head): their
affine weight and bias are copied, running statistics only between layers that both keep them.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from ..utils.recorder import resolve_submodule


def _counterpart(path: str, teacher_modules: Dict[str, nn.Module],
                 student_modules: Dict[str, nn.Module]) -> Optional[nn.Module]:
    """The teacher module at ``path``; for the norm layer of an mmcv ``ConvModule`` (named
    after its type, ``gn`` or ``bn``), the teacher ConvModule's norm layer whatever its name."""
    if path in teacher_modules:
        return teacher_modules[path]
    parent, _, leaf = path.rpartition('.')
    student_parent = student_modules.get(parent)
    teacher_parent = teacher_modules.get(parent)
    if (getattr(student_parent, 'norm_name', None) == leaf
            and getattr(teacher_parent, 'with_norm', False)):
        return teacher_parent.norm
    return None


def inheritance_pairs(student: nn.Module, teacher: nn.Module, module: str,
                      teacher_module: Optional[str] = None
                      ) -> Tuple[List[Tuple[str, Tensor, Tensor]], List[str]]:
    """Pairs every parameter and buffer of ``student.<module>`` with the teacher's tensor it
    inherits.

    Modules are paired by name below ``module`` in the student and ``teacher_module`` in the
    teacher (the teacher may have more); within a pair, tensors by name. A student
    tensor without a teacher tensor of the same name (e.g. nothing to take a GroupNorm's
    weight from in a teacher without norm, or running statistics a GroupNorm lacks) is left as
    initialized and listed.

    Args:
        student: Student detector.
        teacher: Teacher detector.
        module: Name of the student submodule to inherit, e.g. ``'bbox_head'``.
        teacher_module: Name of the teacher submodule it inherits from, e.g. ``'backbone'``
            for a student's convolutional stem (``'backbone.vit.patch_embed.stem'``) that has
            the first layers of the teacher's backbone. Defaults to ``module``.

    Returns:
        ``(pairs, kept)``: ``(name, student_tensor, teacher_tensor)`` for every inherited
        tensor, and the names of the student tensors left as initialized.

    Raises:
        KeyError: If the student lacks ``module`` or the teacher ``teacher_module``.
        ValueError: If a paired tensor differs in shape, or nothing would be inherited.
    """
    roots = []
    for role, detector, name in (('student', student, module),
                                 ('teacher', teacher, teacher_module or module)):
        try:
            roots.append(resolve_submodule(detector, name))
        except KeyError as error:
            raise KeyError(f'inherit: the {role} has no submodule {name!r} ({error.args[0]}); '
                           f'remove it from `inherit`.') from None
    student_root, teacher_root = roots
    student_modules = dict(student_root.named_modules())
    teacher_modules = dict(teacher_root.named_modules())
    pairs, kept, mismatched = [], [], []
    for path, student_module in student_modules.items():
        teacher_module = _counterpart(path, teacher_modules, student_modules)
        own = _own_tensors(student_module)
        source = _own_tensors(teacher_module) if teacher_module is not None else {}
        for name, tensor in own.items():
            full = f'{module}.{path}.{name}' if path else f'{module}.{name}'
            if name not in source:
                kept.append(full)
            elif source[name].shape != tensor.shape:
                mismatched.append(f'{full}: student {tuple(tensor.shape)}, teacher '
                                  f'{tuple(source[name].shape)}')
            else:
                pairs.append((full, tensor, source[name]))
    if mismatched:
        raise ValueError(
            f'inherit: the student\'s {module!r} does not have the teacher\'s shapes ('
            + '; '.join(mismatched[:4]) + (' ...' if len(mismatched) > 4 else '')
            + f'). Give the student\'s {module} the teacher\'s channels, layers, anchors and '
            f'classes, or remove {module!r} from `inherit`.')
    if not pairs:
        raise ValueError(f'inherit: no tensor of the student\'s {module!r} has a teacher '
                         f'counterpart of the same name; remove {module!r} from `inherit`.')
    return pairs, kept


def parse_inherit(inherit: Union[str, dict, Sequence[Union[str, dict]]]
                  ) -> List[Tuple[str, str]]:
    """``DetectionDistiller``'s ``inherit`` as ``(student_module, teacher_module)`` pairs.

    Args:
        inherit: A submodule name (the same in student and teacher), a
            ``dict(student=NAME, teacher=NAME)``, or a list of either.

    Raises:
        ValueError: If an entry is neither, naming the entry and the accepted forms.
    """
    entries = [inherit] if isinstance(inherit, (str, dict)) else list(inherit)
    pairs = []
    for entry in entries:
        if isinstance(entry, str):
            pairs.append((entry, entry))
        elif (isinstance(entry, dict) and set(entry) == {'student', 'teacher'}
              and all(isinstance(v, str) for v in entry.values())):
            pairs.append((entry['student'], entry['teacher']))
        else:
            raise ValueError(
                f'inherit: {entry!r} is not a submodule name or dict(student=NAME, '
                f'teacher=NAME); write e.g. inherit=[\'bbox_head\', dict(student=\'backbone.'
                f'vit.patch_embed.stem\', teacher=\'backbone\')].')
    return pairs


def _own_tensors(module: nn.Module) -> Dict[str, Tensor]:
    """A module's own parameters and buffers (not its children's), by name."""
    tensors = dict(module.named_parameters(recurse=False))
    tensors.update((name, buf) for name, buf in module.named_buffers(recurse=False)
                   if buf is not None)
    return tensors


@torch.no_grad()
def inherit_weights(student: nn.Module, teacher: nn.Module, module: str,
                    teacher_module: Optional[str] = None) -> List[str]:
    """Copies the teacher's weights into ``student.<module>`` (see :func:`inheritance_pairs`).

    Returns:
        The names of the student tensors left as initialized.
    """
    pairs, kept = inheritance_pairs(student, teacher, module, teacher_module)
    for _, target, source in pairs:
        target.copy_(source.to(dtype=target.dtype, device=target.device))
    return kept
