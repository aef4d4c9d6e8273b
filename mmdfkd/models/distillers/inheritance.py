"""Initialize student submodules from a teacher's (the "inheriting strategy" of FGD).

A student whose head (or neck) has the teacher's structure can start from the teacher's weights
instead of random ones: the head then already maps teacher-like features to boxes, and
distillation only has to make the student's features teacher-like. Normalization layers may
differ in type (a GroupNorm student head inheriting from a BatchNorm teacher head): their
affine weight and bias are copied, running statistics only between layers that both keep them.
"""
from typing import Dict, List, Optional, Tuple

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


def inheritance_pairs(student: nn.Module, teacher: nn.Module,
                      module: str) -> Tuple[List[Tuple[str, Tensor, Tensor]], List[str]]:
    """Pairs every parameter and buffer of ``student.<module>`` with the teacher's tensor it
    inherits.

    Modules are paired by name below ``module``; within a pair, tensors by name. A student
    tensor without a teacher tensor of the same name (e.g. nothing to take a GroupNorm's
    weight from in a teacher without norm, or running statistics a GroupNorm lacks) is left as
    initialized and listed.

    Args:
        student: Student detector.
        teacher: Teacher detector.
        module: Name of the submodule to inherit, e.g. ``'bbox_head'``.

    Returns:
        ``(pairs, kept)``: ``(name, student_tensor, teacher_tensor)`` for every inherited
        tensor, and the names of the student tensors left as initialized.

    Raises:
        KeyError: If either detector lacks ``module``.
        ValueError: If a paired tensor differs in shape, or nothing would be inherited.
    """
    roots = []
    for role, detector in (('student', student), ('teacher', teacher)):
        try:
            roots.append(resolve_submodule(detector, module))
        except KeyError as error:
            raise KeyError(f'inherit: the {role} has no submodule {module!r} ({error.args[0]}); '
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


def _own_tensors(module: nn.Module) -> Dict[str, Tensor]:
    """A module's own parameters and buffers (not its children's), by name."""
    tensors = dict(module.named_parameters(recurse=False))
    tensors.update((name, buf) for name, buf in module.named_buffers(recurse=False)
                   if buf is not None)
    return tensors


@torch.no_grad()
def inherit_weights(student: nn.Module, teacher: nn.Module, module: str) -> List[str]:
    """Copies the teacher's weights into ``student.<module>`` (see :func:`inheritance_pairs`).

    Returns:
        The names of the student tensors left as initialized.
    """
    pairs, kept = inheritance_pairs(student, teacher, module)
    for _, target, source in pairs:
        target.copy_(source.to(dtype=target.dtype, device=target.device))
    return kept
