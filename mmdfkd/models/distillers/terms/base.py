"""What every distillation term of ``DetectionDistiller`` is, and the one way to build one."""
import copy
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from mmdet.registry import MODELS
from mmdet.structures import SampleList
from torch import Tensor, nn

from mmdfkd.registry import DISTILL_TERMS
from ..sources import check_source

# Keys of a distillation term that the distiller reads; the rest go to the loss module.
TERM_KEYS = ('student', 'teacher', 'levels', 'name', 'teachers', 'fg_mask')


@dataclass
class TermConfig:
    """A ``distill_losses`` entry, split into the loss and the keys the distiller reads.

    Attributes:
        index: Position of the entry in ``distill_losses``, for messages.
        loss: The built loss module; its ``input_kind`` chose the term class.
        name: The term's name, unique among the terms: its log keys start with
            ``loss_<name>``.
        teacher_ids: Indices of the teachers the term uses.
        student: Student source (``'neck'``, ``'bbox_head'``, ...), None if not given.
        teacher: Teacher source, None if not given.
        levels: Teacher levels to use, None for all that fit.
        fg_mask: Foreground weighting settings, None for none.
        class_mapping: The distiller's ``{teacher_label: student_label}``, empty when the
            teachers' classes are the student's.
    """

    index: int
    loss: nn.Module
    name: str
    teacher_ids: List[int]
    student: Optional[str] = None
    teacher: Optional[str] = None
    levels: Optional[List[int]] = None
    fg_mask: Optional[dict] = None
    class_mapping: Dict[int, int] = field(default_factory=dict)

    @property
    def entry(self) -> str:
        """The entry as messages name it, e.g. ``'model.distill_losses[0] (PKDLoss)'``."""
        return f'model.distill_losses[{self.index}] ({type(self.loss).__name__})'


@dataclass
class TermBatch:
    """The models and their outputs on one training batch, as the terms read them.

    Attributes:
        inputs: The batch normalized by the student's preprocessor, (N, 3, H, W).
        data_samples: The batch's data samples, with ``gt_instances``.
        student: The student detector.
        teachers: The teacher detectors.
        teacher_weights: Per teacher, its weight.
        teacher_outputs: Per teacher, ``{source: output}`` for the sources its terms read and,
            if a term needs them, ``'detections'``: per image an ``InstanceData`` with
            ``bboxes`` (K, 4) in input pixels, ``scores`` and ``labels``. ``{}`` for a teacher
            no term uses.
        student_outputs: ``{source: output}`` for the sources the terms read from the
            student; filled after the terms that run the student's own loss
            (:attr:`DistillTerm.runs_student_loss`), before the others compute.
    """

    inputs: Tensor
    data_samples: SampleList
    student: nn.Module
    teachers: Sequence[nn.Module]
    teacher_weights: Sequence[float]
    teacher_outputs: List[Dict[str, Any]]
    student_outputs: Dict[str, Any] = field(default_factory=dict)


class DistillTerm(nn.Module):
    """A distillation loss bound to what it reads from the student and the teachers.

    A subclass handles one or more ``input_kind`` values of losses and is registered in
    :data:`mmdfkd.registry.DISTILL_TERMS` under them. It is built by :func:`build_term` from the
    term's :class:`TermConfig`, the student and the teachers; its constructor checks the
    configuration against the models. The distiller then runs every model once on a blank
    input and hands the outputs to :meth:`probe`, where a term measures what it needs (feature
    strides, channels) and builds learned parts (adapters). On every batch the distiller runs
    the teachers as deep as :attr:`teacher_sources` and :attr:`needs_detections` say and calls
    :meth:`compute`.

    Args:
        config: The term's configuration.
        student: The student detector.
        teachers: All teacher detectors (the term uses ``config.teacher_ids`` of them).

    Raises:
        ValueError: If the configuration sets a key the term does not read.
    """

    # Whether compute() calls the student's own loss: such terms compute while the student's
    # backbone pass of the batch is shared, and before the student's sources are filled in.
    runs_student_loss: bool = False
    # Keys of TERM_KEYS the term reads besides `name` and `teachers`, and why the others do
    # not apply (for the message).
    config_keys: Tuple[str, ...] = ()
    unused_reason: str = ''

    def __init__(self, config: TermConfig, student: nn.Module,
                 teachers: Sequence[nn.Module]) -> None:
        super().__init__()
        for key in ('student', 'teacher', 'levels', 'fg_mask'):
            if getattr(config, key) is not None and key not in self.config_keys:
                raise ValueError(f'{config.entry}: `{key}` does not apply to a '
                                 f'{config.loss.input_kind!r} term ({self.unused_reason}); '
                                 'remove it.')
        self.name = config.name
        self.loss = config.loss
        self.kind = config.loss.input_kind
        self.teacher_ids = list(config.teacher_ids)

    @property
    def student_sources(self) -> List[str]:
        """Sources the term reads from the student (recorded on the batch)."""
        return []

    @property
    def teacher_sources(self) -> List[str]:
        """Sources the term reads from each of its teachers."""
        return []

    @property
    def needs_detections(self) -> bool:
        """Whether the term reads its teachers' post-NMS detections."""
        return False

    def probe(self, student_outputs: Dict[str, Any], teacher_outputs: List[Dict[str, Any]],
              shape: Tuple[int, int]) -> None:
        """Measures the models' outputs on a blank input; builds what depends on them.

        Args:
            student_outputs: ``{source: output}`` of the student, for :attr:`student_sources`
                of every term.
            teacher_outputs: Per teacher, ``{source: output}`` for the sources its terms read.
            shape: The blank input's (H, W).
        """

    def reset_parameters(self) -> None:
        """Re-initializes the term's learned parts (e.g. adapters), in registration order;
        called by the distiller's ``init_weights``."""
        for module in self.modules():
            if module is not self and hasattr(module, 'reset_parameters'):
                module.reset_parameters()

    def describe(self) -> str:
        """One line for the build log: name, loss and kind."""
        return f'{self.name} ({type(self.loss).__name__}, {self.kind})'

    def compute(self, batch: TermBatch) -> Dict[str, Tensor]:
        """The term's losses on a batch: ``{'loss_<name>': value}``, the sum over the term's
        teachers of their weight times :meth:`teacher_loss`.

        A term whose loss yields several parts overrides this and returns
        ``loss_<name>_<part>`` entries.
        """
        value = sum(batch.teacher_weights[t] * self.teacher_loss(t, batch)
                    for t in self.teacher_ids)
        return {f'loss_{self.name}': value}

    def teacher_loss(self, teacher_id: int, batch: TermBatch) -> Tensor:
        """The loss against one teacher, a scalar; see :meth:`compute`."""
        raise NotImplementedError(f'{type(self).__name__} computes no per-teacher loss.')


class SourcePairTerm(DistillTerm):
    """A term comparing a student source with the same teacher source of each teacher.

    Reads the config keys ``student`` and ``teacher`` (both required), checked against the
    models at build time.

    Raises:
        ValueError: If a source is missing or names no submodule of its model.
    """

    config_keys = ('student', 'teacher')

    def __init__(self, config: TermConfig, student: nn.Module,
                 teachers: Sequence[nn.Module]) -> None:
        super().__init__(config, student, teachers)
        missing = [key for key in ('student', 'teacher') if getattr(config, key) is None]
        if missing:
            raise ValueError(f'distill_losses[{config.index}] ({type(config.loss).__name__}) '
                             f'needs the keys {sorted(missing)}: the student and teacher '
                             "sources, e.g. student='neck', teacher='neck'.")
        self.student_source = config.student
        self.teacher_source = config.teacher
        check_source(student, config.student, f'{config.entry}: student={config.student!r}',
                     'the student')
        for t in self.teacher_ids:
            check_source(teachers[t], config.teacher,
                         f'{config.entry}: teacher={config.teacher!r}', f'teacher {t}')

    @property
    def student_sources(self) -> List[str]:
        return [self.student_source]

    @property
    def teacher_sources(self) -> List[str]:
        return [self.teacher_source]


def scale_losses(losses: Dict[str, Any], weight: float) -> Dict[str, Any]:
    """A detector's loss dict with every entry whose key contains ``loss`` (a tensor or a list
    of per-level tensors) multiplied by ``weight``; the other entries (logged only, e.g.
    ``acc``) unchanged."""
    out = {}
    for key, value in losses.items():
        if 'loss' in key:
            value = [v * weight for v in value] if isinstance(value, list) else value * weight
        out[key] = value
    return out


def default_term_name(loss_type: str, student: Optional[str]) -> str:
    """The name of a term without ``name``: loss type and student source, e.g.
    ``'PKDLoss_neck'``, or the loss type alone (``'PseudoBoxLoss'``)."""
    return re.sub(r'\W+', '_', f'{loss_type}_{student or ""}').strip('_')


def build_term(index: int, cfg: dict, student: nn.Module, teachers: Sequence[nn.Module],
               class_mapping: Optional[Dict[int, int]] = None) -> DistillTerm:
    """Builds the term of one ``distill_losses`` entry.

    The keys in :data:`TERM_KEYS` are the distiller's; the rest build the loss
    (``MODELS.build``), whose ``input_kind`` picks the term class in ``DISTILL_TERMS``.

    Args:
        index: Position of the entry in ``distill_losses``.
        cfg: The entry: a loss config plus term keys.
        student: The student detector.
        teachers: All teacher detectors.
        class_mapping: The distiller's ``{teacher_label: student_label}``.

    Returns:
        The term, not yet probed.

    Raises:
        TypeError: If the loss does not take the remaining keys, or is no distillation loss.
        ValueError: If the loss or the term keys are invalid (the message names the entry).
    """
    cfg = copy.deepcopy(dict(cfg))
    term_cfg = {key: cfg.pop(key) for key in TERM_KEYS if key in cfg}
    loss_type = cfg.get('type', '?')
    try:
        loss = MODELS.build(cfg)
    except TypeError as exc:
        raise TypeError(f'distill_losses[{index}] ({loss_type}): {exc}. Distiller keys are '
                        f'{list(TERM_KEYS)}; the rest must be arguments of {loss_type}.'
                        ) from exc
    except ValueError as exc:
        raise ValueError(f'model.distill_losses[{index}] ({loss_type}): {exc}') from exc
    kind = getattr(loss, 'input_kind', None)
    term_class = DISTILL_TERMS.get(kind) if isinstance(kind, str) else None
    if term_class is None:
        kinds = ', '.join(sorted(DISTILL_TERMS.module_dict))
        raise TypeError(f'distill_losses[{index}]: {loss_type} is not a distillation loss '
                        f'(it has no input_kind of {kinds}).')
    teacher_ids = list(term_cfg.get('teachers', range(len(teachers))))
    if any(not 0 <= t < len(teachers) for t in teacher_ids):
        raise ValueError(f'distill_losses[{index}]: teachers={teacher_ids} but there are '
                         f'{len(teachers)} teachers.')
    config = TermConfig(
        index=index, loss=loss, teacher_ids=teacher_ids,
        name=term_cfg.get('name') or default_term_name(loss_type, term_cfg.get('student')),
        student=term_cfg.get('student'), teacher=term_cfg.get('teacher'),
        levels=term_cfg.get('levels'), fg_mask=term_cfg.get('fg_mask'),
        class_mapping=dict(class_mapping or {}))
    return term_class(config, student, teachers)


def check_unique_names(terms: Sequence[DistillTerm]) -> None:
    """Raises if two terms share a name: their log keys would overwrite each other.

    Raises:
        ValueError: Naming both entries and asking for ``name=`` on each.
    """
    seen: Dict[str, int] = {}
    for index, term in enumerate(terms):
        if term.name in seen:
            raise ValueError(
                f'model.distill_losses[{seen[term.name]}] and [{index}] are both named '
                f'{term.name!r}, so their losses would be logged (and summed) under the same '
                f"key loss_{term.name}. Set `name='...'` on each of them, e.g. "
                f"name='{term.name}_{seen[term.name]}' and name='{term.name}_{index}'.")
        seen[term.name] = index
