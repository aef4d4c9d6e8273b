"""A student detector trained against one or more frozen teacher detectors."""
import copy
import math
import re
from contextlib import contextmanager
from difflib import get_close_matches
from itertools import chain
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from mmdet.models.dense_heads import AnchorHead
from mmdet.models.detectors import BaseDetector
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample, OptSampleList, SampleList
from mmengine.config import ConfigDict
from mmengine.logging import print_log
from mmengine.structures import InstanceData
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from ..losses.utils import check_loss_weight
from .inheritance import inherit_weights, inheritance_pairs
from .normalization import normalize_like, renormalize
from .recorder import ModuleOutputRecorder, resolve_submodule
from .teacher_loader import load_teacher_checkpoint, resolve_teacher_config

# Keys of a distillation term that the distiller reads; the rest go to the loss module.
_TERM_KEYS = ('student', 'teacher', 'levels', 'name', 'teachers', 'fg_mask')
_OUTPUT_ALIASES = {'cls': 0, 'reg': 1}


def _num_classes(detector: nn.Module) -> Optional[int]:
    for name in ('bbox_head', 'roi_head.bbox_head'):
        try:
            return int(detector.get_submodule(name).num_classes)
        except AttributeError:
            continue
    return None


def _parse_source(model: nn.Module, spec: str) -> Tuple[str, Optional[int]]:
    """Splits a source like ``'neck'``, ``'bbox_head.cls'`` or ``'bbox_head:1'`` into the
    submodule name and the index of the output item to take (None: the whole output)."""
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


def _check_source(model: nn.Module, spec: str, entry: str, owner: str) -> None:
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
        _parse_source(model, spec)
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


class _Term(nn.Module):
    """One configured distillation term: a loss bound to student and teacher sources."""

    def __init__(self, name: str, loss: nn.Module, student: str, teacher: str,
                 levels: Optional[List[int]], teachers: List[int],
                 fg_mask: Optional[dict]) -> None:
        super().__init__()
        self.name = name
        self.loss = loss
        self.kind = loss.input_kind
        self.student_source = student
        self.teacher_source = teacher
        self.levels = levels
        self.teacher_ids = teachers
        self.fg_mask = fg_mask
        # Filled by the build-time probe: per teacher, (teacher level, student level) pairs and
        # their strides, and 1x1 adapters where channel counts differ.
        self.level_pairs: Dict[int, List[Tuple[int, int, int]]] = {}
        self.adapters = nn.ModuleDict()


@MODELS.register_module()
class DetectionDistiller(BaseDetector):
    """Trains a student detector with distillation losses from frozen teacher detectors.

    The student is any mmdet detector; each teacher is an mmdet detector built from its own
    config and loaded from its checkpoint once, strictly, with ``weights_only=True``. Teachers
    are frozen child modules (they follow ``.to()``, ``.half()`` and AMP), stay in eval mode,
    run under ``torch.no_grad()`` only as deep as the configured terms need, and are left out of
    this model's ``state_dict`` (and so of training checkpoints). Each teacher receives the
    batch normalized the way its own data preprocessor would (mean, std, channel order, padding).
    Under ``DistributedDataParallel`` the teachers' parameters and buffers are ignored: they are
    neither broadcast nor synchronized (every rank loads the same checkpoint), and no
    ``find_unused_parameters`` is needed for them.

    The student's own detection loss on the batch's ground truth is kept with weight
    ``gt_loss_weight`` (0 turns it off, e.g. when the only targets are sampled boxes).
    Distillation terms are listed in ``distill_losses``; each names a registered loss with an
    ``input_kind`` and the sources it compares:

    - ``'feature'`` losses (``FeatureMSELoss``, ``ChannelWiseDistillLoss``, ``PKDLoss``) compare
      multi-level maps, e.g. ``student='neck', teacher='neck'``. Levels are matched by stride
      (``levels`` lists the teacher levels to use, default all that have a student level of the
      same stride); learned 1x1 adapters map student channels to teacher channels where they
      differ. ``fg_mask=dict(score_thr=0.3, bg_weight=0.1)`` weights positions inside the
      teacher's confident boxes by 1 and the rest by ``bg_weight`` (losses that take a weight).
    - ``'dense_cls'`` and ``'dense_box'`` losses (``ClassificationKDLoss``,
      ``BoxRegressionKDLoss``) compare head outputs location by location, e.g.
      ``student='bbox_head', teacher='bbox_head'``; they need heads that share anchors or
      points, strides and classes, which is checked at build time.
    - ``'detections'`` losses (``PseudoBoxLoss``) turn the teachers' post-NMS detections into
      targets for the student's own head loss, so they fit any pair of heads.

    Example:
        >>> model = dict(
        ...     type='DetectionDistiller',
        ...     student=student_model_cfg,
        ...     teachers=[dict(config='{{fileDirname}}/teacher.py', checkpoint='teacher.pth')],
        ...     distill_losses=[
        ...         dict(type='PKDLoss', student='neck', teacher='neck', loss_weight=6.0),
        ...         dict(type='PseudoBoxLoss', score_thr=0.3)])

    Args:
        student: Config of the student detector. Its ``data_preprocessor`` becomes this model's.
        teachers: One dict or a list of dicts with keys ``config`` (a model config dict, a
            file path or an ``mmdet::`` path; a config names a file next to itself as
            ``'{{fileDirname}}/teacher.py'``, and a relative path is looked up in
            ``config_dir``, then in the working directory), ``checkpoint`` (path of a
            ``.pth``) and optionally ``weight`` (default 1.0, >= 0, used to combine teachers)
            and ``checkpoint_url`` (where to download the checkpoint, named in the error if
            the file is missing).
        distill_losses: Distillation terms: a loss config plus the keys ``student`` and
            ``teacher`` (sources), and optionally ``levels``, ``teachers`` (indices of the
            teachers the term uses, default all), ``name`` and ``fg_mask``.
        gt_loss_weight: Weight of the student's own loss on the batch's ground truth, >= 0.
        inherit: Names of student submodules (e.g. ``['bbox_head']``) that start from the
            first teacher's weights instead of their own initialization (FGD's inheriting
            strategy): every parameter and buffer with a same-named, same-shaped teacher
            counterpart is copied by ``init_weights``; norm layers of another type (GroupNorm
            from BatchNorm) take the affine weight and bias. Checked at build time: the
            submodule must exist in both and its shapes must match.
        class_mapping: ``{teacher_label: student_label}`` when the teachers' classes differ
            from the student's; needed if the class counts differ.
        predict_with: ``'student'`` (default) or ``'teacher'``/``'teacherN'``: which model
            ``predict`` runs, so validation can also report a teacher's metrics.
        config_dir: A folder relative teacher config paths are looked up in before the
            working directory. Defaults to None (the working directory only).
        probe_shape: Input (H, W) of the build-time probe that measures feature shapes;
            must be divisible by the largest stride.
        data_preprocessor: Overrides the student's data preprocessor config.
        init_cfg: Initialization config of the student and adapters.
    """

    def __init__(self,
                 student: dict,
                 teachers: Union[dict, Sequence[dict]],
                 distill_losses: Sequence[dict] = (),
                 gt_loss_weight: float = 1.0,
                 inherit: Sequence[str] = (),
                 class_mapping: Optional[Dict[int, int]] = None,
                 predict_with: str = 'student',
                 config_dir: Optional[str] = None,
                 probe_shape: Tuple[int, int] = (256, 256),
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        student = ConfigDict(copy.deepcopy(student))  # mmdet heads read test_cfg.attr
        if data_preprocessor is None:
            data_preprocessor = student.get('data_preprocessor')
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.student = MODELS.build(student)

        teacher_cfgs = [teachers] if isinstance(teachers, dict) else list(teachers)
        if not teacher_cfgs:
            raise ValueError('DetectionDistiller needs at least one teacher: set `teachers` to '
                             'dict(config=..., checkpoint=...) or a list of them.')
        self.teachers = nn.ModuleList()
        self.teacher_weights: List[float] = []
        for i, cfg in enumerate(teacher_cfgs):
            missing = {'config', 'checkpoint'} - set(cfg)
            if missing:
                raise ValueError(f'teachers[{i}] lacks {sorted(missing)}: each teacher is '
                                 'dict(config=..., checkpoint=..., weight=1.0).')
            teacher = MODELS.build(resolve_teacher_config(cfg['config'], config_dir))
            key = 'model.teachers' + ('' if isinstance(teachers, dict) else f'.{i}')
            load_teacher_checkpoint(teacher, cfg['checkpoint'], cfg.get('checkpoint_url'),
                                    f'{key}.checkpoint')
            teacher.requires_grad_(False)
            teacher.eval()
            self.teachers.append(teacher)
            self.teacher_weights.append(check_loss_weight(
                'DetectionDistiller', cfg.get('weight', 1.0), f'{key}.weight'))
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(
            self, [f'teachers.{name}' for name, _ in chain(self.teachers.named_parameters(),
                                                          self.teachers.named_buffers())])

        self.gt_loss_weight = check_loss_weight('DetectionDistiller', gt_loss_weight,
                                                'model.gt_loss_weight')
        self.class_mapping = {int(k): int(v) for k, v in (class_mapping or {}).items()}
        self._check_classes()
        self.predict_with = predict_with
        self._teacher_to_predict()  # validates predict_with
        self.inherit = [inherit] if isinstance(inherit, str) else list(inherit)
        for module in self.inherit:
            try:
                inheritance_pairs(self.student, self.teachers[0], module)
            except (KeyError, ValueError) as error:
                raise type(error)(f'model.{error.args[0]}') from None

        self.terms = nn.ModuleList(self._build_term(i, cfg) for i, cfg in enumerate(distill_losses))
        self._probe(probe_shape)
        self._register_state_dict_hook(_drop_teacher_keys)
        self.register_load_state_dict_post_hook(_ignore_missing_teacher_keys)

    # ----------------------------------------------------------------- build-time validation
    def _check_classes(self) -> None:
        student_classes = _num_classes(self.student)
        for i, teacher in enumerate(self.teachers):
            teacher_classes = _num_classes(teacher)
            if None in (student_classes, teacher_classes) or self.class_mapping:
                continue
            if student_classes != teacher_classes:
                raise ValueError(
                    f'Teacher {i} predicts {teacher_classes} classes but the student '
                    f'{student_classes}. Give the student the teacher\'s num_classes, or set '
                    '`class_mapping={teacher_label: student_label, ...}` in the distiller.')

    def _build_term(self, index: int, cfg: dict) -> _Term:
        cfg = copy.deepcopy(dict(cfg))
        term_cfg = {key: cfg.pop(key) for key in _TERM_KEYS if key in cfg}
        loss_type = cfg.get('type', '?')
        try:
            loss = MODELS.build(cfg)
        except TypeError as exc:
            raise TypeError(f'distill_losses[{index}] ({loss_type}): {exc}. Distiller keys are '
                            f'{list(_TERM_KEYS)}; the rest must be arguments of {loss_type}.'
                            ) from exc
        except ValueError as exc:
            raise ValueError(f'model.distill_losses[{index}] ({loss_type}): {exc}') from exc
        kind = getattr(loss, 'input_kind', None)
        if kind not in ('feature', 'dense_cls', 'dense_box', 'detections'):
            raise TypeError(f'distill_losses[{index}]: {loss_type} is not a distillation loss '
                            '(it has no input_kind of feature, dense_cls, dense_box or '
                            'detections).')
        teacher_ids = list(term_cfg.get('teachers', range(len(self.teachers))))
        if any(not 0 <= t < len(self.teachers) for t in teacher_ids):
            raise ValueError(f'distill_losses[{index}]: teachers={teacher_ids} but there are '
                             f'{len(self.teachers)} teachers.')
        if kind == 'detections':
            student = teacher = ''
        else:
            missing = {'student', 'teacher'} - set(term_cfg)
            if missing:
                raise ValueError(f'distill_losses[{index}] ({loss_type}) needs the keys '
                                 f'{sorted(missing)}: the student and teacher sources, e.g. '
                                 "student='neck', teacher='neck'.")
            student, teacher = term_cfg['student'], term_cfg['teacher']
            entry = f'model.distill_losses[{index}] ({loss_type})'
            _check_source(self.student, student, f'{entry}: student={student!r}', 'the student')
            for t in teacher_ids:
                _check_source(self.teachers[t], teacher, f'{entry}: teacher={teacher!r}',
                              f'teacher {t}')
        if term_cfg.get('fg_mask') is not None and not getattr(loss, 'accepts_weight', False):
            raise ValueError(f'distill_losses[{index}]: {loss_type} takes no position weights, '
                             'so fg_mask does not apply; use it with FeatureMSELoss.')
        name = term_cfg.get('name') or re.sub(r'\W+', '_', f'{loss_type}_{student}').strip('_')
        return _Term(name, loss, student, teacher, term_cfg.get('levels'), teacher_ids,
                     term_cfg.get('fg_mask'))

    @torch.no_grad()
    def _probe(self, shape: Tuple[int, int]) -> None:
        """Runs every model once on a blank input to match levels, build adapters and check
        that dense head losses fit the pair; logs which losses fit."""
        if not self.terms:
            return
        was_training = self.student.training
        self.student.eval()
        inputs = torch.zeros(1, 3, *shape)
        student_out = self._record(self.student, [t.student_source for t in self.terms
                                                  if t.kind != 'detections'], inputs)
        self.student.train(was_training)
        for term in self.terms:
            if term.kind == 'detections':
                continue
            for t in term.teacher_ids:
                teacher = self.teachers[t]
                teacher_inputs = renormalize(inputs, self.data_preprocessor,
                                             teacher.data_preprocessor)
                teacher_out = self._record(teacher, [term.teacher_source], teacher_inputs)
                if term.kind == 'feature':
                    self._match_levels(term, t, student_out[term.student_source],
                                       teacher_out[term.teacher_source], shape)
                else:
                    self._check_dense_pair(term, t)
        print_log('DetectionDistiller terms: ' + '; '.join(
            f'{term.name} ({type(term.loss).__name__}, {term.kind}'
            + (f', levels by stride {sorted({s for p in term.level_pairs.values() for *_, s in p})}'
               if term.kind == 'feature' else '') + ')' for term in self.terms), 'current')

    def _record(self, model: nn.Module, sources: Sequence[str], inputs: Tensor) -> dict:
        parsed = {spec: _parse_source(model, spec) for spec in sources}
        names = [name for name, _ in parsed.values()]
        with ModuleOutputRecorder(model, names) as outputs:
            _forward_sources(model, inputs, names)
        return {spec: _select(outputs[name], index) for spec, (name, index) in parsed.items()}

    @torch.no_grad()
    def teacher_sources(self, index: int, images: Tensor) -> Dict[str, Any]:
        """Teacher ``index``'s outputs for the sources its terms read, on loader-space images:
        what a stored bank of teacher outputs holds (``tools/generate_synthetic.py
        --store-outputs``).

        Args:
            index: Teacher index.
            images: Images in the data loader's pixel space (BGR, 0-255), (N, 3, H, W).

        Returns:
            ``{source: output}``, outputs as the modules return them (tensors, lists, tuples).
        """
        teacher = self.teachers[index]
        sources = [t.teacher_source for t in self.terms
                   if index in t.teacher_ids and t.kind != 'detections']
        return self._record(teacher, sources, normalize_like(images, teacher.data_preprocessor))

    def _match_levels(self, term: _Term, teacher_id: int, student_maps: Any,
                      teacher_maps: Any, shape: Tuple[int, int]) -> None:
        student_maps = _as_levels(student_maps, term.student_source)
        teacher_maps = _as_levels(teacher_maps, term.teacher_source)
        student_strides = {shape[0] // m.shape[-2]: i for i, m in enumerate(student_maps)}
        levels = term.levels if term.levels is not None else [
            i for i, m in enumerate(teacher_maps) if shape[0] // m.shape[-2] in student_strides]
        pairs = []
        for level in levels:
            if not 0 <= level < len(teacher_maps):
                raise ValueError(f'{term.name}: teacher level {level} does not exist; the '
                                 f'teacher source {term.teacher_source!r} has '
                                 f'{len(teacher_maps)} levels.')
            stride = shape[0] // teacher_maps[level].shape[-2]
            if stride not in student_strides:
                raise ValueError(
                    f'{term.name}: teacher level {level} has stride {stride}, and no student '
                    f'level of {term.student_source!r} has it (student strides: '
                    f'{sorted(student_strides)}). Choose `levels` among the shared strides.')
            student_level = student_strides[stride]
            pairs.append((level, student_level, stride))
            c_s = student_maps[student_level].shape[1]
            c_t = teacher_maps[level].shape[1]
            key = f'{teacher_id}_{level}'
            if c_s != c_t and key not in term.adapters:
                term.adapters[key] = nn.Conv2d(c_s, c_t, kernel_size=1)
        if not pairs:
            raise ValueError(f'{term.name}: no level of {term.teacher_source!r} shares a stride '
                             f'with the student\'s {term.student_source!r}.')
        term.level_pairs[teacher_id] = pairs

    def _check_dense_pair(self, term: _Term, teacher_id: int) -> None:
        student_head = resolve_submodule(self.student, _parse_source(self.student,
                                                                     term.student_source)[0])
        teacher = self.teachers[teacher_id]
        teacher_head = resolve_submodule(teacher, _parse_source(teacher, term.teacher_source)[0])
        problems = _dense_pair_problems(student_head, teacher_head)
        if problems:
            raise ValueError(
                f'{term.name} ({type(term.loss).__name__}) compares head outputs location by '
                f'location, which does not fit student {term.student_source!r} and teacher '
                f'{teacher_id} {term.teacher_source!r}: {"; ".join(problems)}. Use feature '
                'losses and PseudoBoxLoss for this pair.')

    def score_disagreement(self, images: Tensor, head: str = 'bbox_head') -> Tensor:
        """Jensen-Shannon divergence between the student's and the teachers' class
        probabilities, location by location, differentiable in ``images`` through all models.

        This is the competition term of adaptive DeepInversion adapted to detection: image
        synthesis rewards images on which the student still disagrees with its teachers.
        Heads must score classes with sigmoids (RetinaNet, ATSS, ...): each class probability
        is a Bernoulli distribution, clamped to [0.01, 0.99] as in DeepInversion; the
        divergence is averaged over locations and classes and over teachers by their weights.

        Args:
            images: Images in the data loader's pixel space (BGR, 0-255), (N, 3, H, W).
            head: Name of the dense head in the student and the teachers.

        Returns:
            Scalar divergence divided by ln 2, its largest value: in [0, 1].

        Raises:
            ValueError: If the heads do not share anchors, strides and classes.
        """
        student_head = resolve_submodule(self.student, head)
        if not getattr(student_head, 'use_sigmoid_cls', False):
            raise ValueError(f'score_disagreement needs a sigmoid-scored {head!r} '
                             '(use_sigmoid=True in loss_cls); set adi_weight=0 for this student.')
        for teacher in self.teachers:
            problems = _dense_pair_problems(student_head, resolve_submodule(teacher, head))
            if problems:
                raise ValueError('score_disagreement (the competition term, adi_weight) needs '
                                 f'heads that share locations: {"; ".join(problems)}. Set '
                                 'adi_weight=0 for this pair.')
        student_probs = self._head_probabilities(self.student, head, images)
        total = 0.
        for teacher, weight in zip(self.teachers, self.teacher_weights):
            teacher_probs = self._head_probabilities(teacher, head, images)
            if teacher_probs.shape != student_probs.shape:
                raise ValueError(
                    f'The teacher and student heads give {tuple(teacher_probs.shape)} and '
                    f'{tuple(student_probs.shape)} scores: their data preprocessors pad to '
                    'different sizes; use images whose sides divide both pad_size_divisors.')
            mean = (student_probs + teacher_probs) / 2
            divergence = (_bernoulli_kl(student_probs, mean) +
                          _bernoulli_kl(teacher_probs, mean)) / 2
            total = total + weight * divergence.mean()
        return total / (sum(self.teacher_weights) * math.log(2))

    @staticmethod
    def _head_probabilities(detector: nn.Module, head: str, images: Tensor) -> Tensor:
        head_module = resolve_submodule(detector, head)
        inputs = normalize_like(images, detector.data_preprocessor)
        with ModuleOutputRecorder(detector, [head]) as recorded:
            _forward_sources(detector, inputs, [head])
        logits = _flatten_levels(recorded[head][0], head_module.cls_out_channels)
        return logits.sigmoid().clamp(0.01, 0.99)

    # ------------------------------------------------------------------------- training
    def train(self, mode: bool = True) -> 'DetectionDistiller':
        """Sets train mode on the student; teachers stay in eval mode."""
        super().train(mode)
        for teacher in self.teachers:
            teacher.eval()
        return self

    def init_weights(self) -> None:
        """Initializes the student (the ``inherit`` submodules from the first teacher) and the
        adapters; the loaded teachers are left alone."""
        self.student.init_weights()
        for module in self.inherit:
            kept = inherit_weights(self.student, self.teachers[0], module)
            print_log(f'DetectionDistiller: student {module} inherited from teacher 0'
                      + (f'; kept as initialized: {", ".join(kept)}' if kept else ''),
                      logger='current')
        for term in self.terms:
            for adapter in term.adapters.values():
                adapter.reset_parameters()

    def loss(self, batch_inputs: Tensor, batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """Student's ground-truth loss, pseudo-box loss and distillation terms of one batch.

        Args:
            batch_inputs: Images normalized by the student's preprocessor, (N, 3, H, W).
            batch_data_samples: Data samples with ``gt_instances`` (real or sampled targets).

        Returns:
            Loss dict; keys with ``loss`` are summed by mmengine.
        """
        teacher_out = [self._run_teacher(t, batch_inputs, batch_data_samples)
                       for t in range(len(self.teachers))]
        student_sources = [t.student_source for t in self.terms if t.kind != 'detections']
        parsed = {spec: _parse_source(self.student, spec) for spec in student_sources}
        losses: Dict[str, Tensor] = {}
        with _shared_features(self.student, batch_inputs), ModuleOutputRecorder(
                self.student, [name for name, _ in parsed.values()]) as recorded:
            if self.gt_loss_weight > 0:
                gt_losses = self.student.loss(batch_inputs, batch_data_samples)
                losses.update(_scaled(gt_losses, self.gt_loss_weight, prefix=''))
            for term in self.terms:
                if term.kind == 'detections':
                    targets = self._pseudo_samples(term, teacher_out, batch_data_samples)
                    pseudo_losses = self.student.loss(batch_inputs, targets)
                    losses.update(_scaled(pseudo_losses, term.loss.loss_weight,
                                          prefix=f'{term.name}_'))
            if not recorded and parsed:
                _forward_sources(self.student, batch_inputs,
                                 [name for name, _ in parsed.values()])
        student_out = {spec: _select(recorded[name], index)
                       for spec, (name, index) in parsed.items()}
        for term in self.terms:
            if term.kind == 'detections':
                continue
            value = sum(self.teacher_weights[t] * self._term_loss(
                term, t, student_out[term.student_source], teacher_out[t], batch_inputs)
                for t in term.teacher_ids)
            losses[f'loss_{term.name}'] = value
        return losses

    @torch.no_grad()
    def _run_teacher(self, index: int, inputs: Tensor, data_samples: SampleList) -> dict:
        """Runs teacher ``index`` as deep as the terms need; returns its recorded sources and,
        if needed, its detections."""
        teacher = self.teachers[index]
        terms = [t for t in self.terms if index in t.teacher_ids]
        sources = [t.teacher_source for t in terms if t.kind != 'detections']
        needs_detections = any(t.kind == 'detections' or t.fg_mask for t in terms)
        if not sources and not needs_detections:
            return {}
        stored = [sample.get('teacher_outputs') for sample in data_samples]
        if all(entry is not None for entry in stored):
            return _stored_outputs(index, stored, sources, needs_detections, inputs)
        parsed = {spec: _parse_source(teacher, spec) for spec in sources}
        teacher_inputs = renormalize(inputs, self.data_preprocessor, teacher.data_preprocessor)
        out: dict = {}
        with ModuleOutputRecorder(teacher, [name for name, _ in parsed.values()]) as recorded:
            if needs_detections:
                samples = [DetDataSample(metainfo=s.metainfo) for s in data_samples]
                results = teacher.predict(teacher_inputs, samples, rescale=False)
                out['detections'] = [r.pred_instances for r in results]
            else:
                _forward_sources(teacher, teacher_inputs, [name for name, _ in parsed.values()])
        out.update({spec: _select(recorded[name], index)
                    for spec, (name, index) in parsed.items()})
        return out

    def _pseudo_samples(self, term: _Term, teacher_out: List[dict],
                        data_samples: SampleList) -> SampleList:
        detections = [[self._map_labels(d) for d in teacher_out[t]['detections']]
                      for t in term.teacher_ids]
        targets = term.loss.make_targets(detections,
                                         [self.teacher_weights[t] for t in term.teacher_ids],
                                         [s.gt_instances for s in data_samples])
        samples = []
        for sample, target in zip(data_samples, targets):
            new = DetDataSample(metainfo=sample.metainfo)
            new.gt_instances = target
            samples.append(new)
        return samples

    def _map_labels(self, instances: InstanceData) -> InstanceData:
        if not self.class_mapping:
            return instances
        labels = instances.labels.tolist()
        keep = torch.tensor([label in self.class_mapping for label in labels], dtype=torch.bool,
                            device=instances.labels.device)
        instances = instances[keep]
        instances.labels = torch.tensor([self.class_mapping[label] for label in
                                         instances.labels.tolist()], dtype=torch.long,
                                        device=keep.device)
        return instances

    def _term_loss(self, term: _Term, teacher_id: int, student: Any, teacher_out: dict,
                   inputs: Tensor) -> Tensor:
        teacher = teacher_out[term.teacher_source]
        if term.kind == 'feature':
            student_maps = _as_levels(student, term.student_source)
            teacher_maps = _as_levels(teacher, term.teacher_source)
            total = 0.
            for level, student_level, stride in term.level_pairs[teacher_id]:
                s = student_maps[student_level]
                t = teacher_maps[level].to(s.dtype)
                adapter = term.adapters[f'{teacher_id}_{level}'] if f'{teacher_id}_{level}' in \
                    term.adapters else None
                if adapter is not None:
                    s = adapter(s)
                if s.shape[-2:] != t.shape[-2:]:
                    # Teachers pad to their own size divisor; compare the common area.
                    h, w = min(s.shape[-2], t.shape[-2]), min(s.shape[-1], t.shape[-1])
                    s, t = s[..., :h, :w], t[..., :h, :w]
                weight = None
                if term.fg_mask:
                    weight = _foreground_weight(teacher_out['detections'], t, stride,
                                                **term.fg_mask)
                total = total + (term.loss(s, t, weight) if weight is not None else term.loss(s, t))
            return total
        head = resolve_submodule(self.student,
                                 _parse_source(self.student, term.student_source)[0])
        teacher_head = resolve_submodule(self.teachers[teacher_id], _parse_source(
            self.teachers[teacher_id], term.teacher_source)[0])
        cls_s, reg_s = _head_outputs(student, term.student_source)
        cls_t, reg_t = _head_outputs(teacher, term.teacher_source)
        num_classes = head.cls_out_channels  # equal for both heads, checked at build time
        logits_s = _flatten_levels(cls_s, num_classes)
        logits_t = _flatten_levels(cls_t, num_classes).to(logits_s.dtype)
        if term.kind == 'dense_cls':
            return term.loss(logits_s, logits_t)
        # dense_box: decode both heads' regressions on the shared anchors.
        anchors = torch.cat(head.prior_generator.grid_priors(
            [c.shape[-2:] for c in cls_s], device=cls_s[0].device))
        anchors = anchors.repeat(cls_s[0].shape[0], 1)
        boxes_s = head.bbox_coder.decode(anchors, _flatten_levels(reg_s, 4))
        boxes_t = teacher_head.bbox_coder.decode(
            anchors, _flatten_levels(reg_t, 4).to(boxes_s.dtype))
        probs_t = (logits_t.sigmoid() if getattr(teacher_head, 'use_sigmoid_cls', True) else
                   logits_t.softmax(-1)[:, :-1])
        return term.loss(boxes_s, boxes_t, probs_t.max(-1).values)

    # ----------------------------------------------------------------------- inference
    def _teacher_to_predict(self) -> Optional[int]:
        if self.predict_with == 'student':
            return None
        match = re.fullmatch(r'teacher(\d*)', self.predict_with)
        if not match or int(match.group(1) or 0) >= len(self.teachers):
            raise ValueError(f'predict_with={self.predict_with!r}: use "student", "teacher" or '
                             f'"teacherN" with N < {len(self.teachers)}.')
        return int(match.group(1) or 0)

    def predict(self, batch_inputs: Tensor, batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        """Predicts with the student (or the teacher chosen by ``predict_with``)."""
        index = self._teacher_to_predict()
        if index is None:
            return self.student.predict(batch_inputs, batch_data_samples, rescale=rescale)
        teacher = self.teachers[index]
        inputs = renormalize(batch_inputs, self.data_preprocessor, teacher.data_preprocessor)
        return teacher.predict(inputs, batch_data_samples, rescale=rescale)

    def _forward(self, batch_inputs: Tensor, batch_data_samples: OptSampleList = None):
        return self.student._forward(batch_inputs, batch_data_samples)

    def extract_feat(self, batch_inputs: Tensor):
        return self.student.extract_feat(batch_inputs)


# ------------------------------------------------------------------------------ helpers
def _dense_pair_problems(student_head: nn.Module, teacher_head: nn.Module) -> List[str]:
    """Why two heads cannot be compared location by location (empty if they can)."""
    if not (isinstance(student_head, AnchorHead) and isinstance(teacher_head, AnchorHead)):
        return [f'both heads must be anchor-based dense heads (got '
                f'{type(student_head).__name__} and {type(teacher_head).__name__})']
    problems = []
    if student_head.cls_out_channels != teacher_head.cls_out_channels:
        problems.append(f'class channels differ ({student_head.cls_out_channels} vs '
                        f'{teacher_head.cls_out_channels})')
    s_gen, t_gen = student_head.prior_generator, teacher_head.prior_generator
    if s_gen.strides != t_gen.strides:
        problems.append(f'strides differ ({s_gen.strides} vs {t_gen.strides})')
    elif not all(torch.equal(a, b) for a, b in zip(s_gen.base_anchors, t_gen.base_anchors)):
        problems.append('anchors differ (anchor_generator settings)')
    if getattr(student_head, 'use_sigmoid_cls', True) != getattr(teacher_head,
                                                                 'use_sigmoid_cls', True):
        problems.append('one head uses sigmoid and the other softmax scores')
    return problems


def _stored_outputs(index: int, stored: List[dict], sources: Sequence[str],
                    needs_detections: bool, inputs: Tensor) -> dict:
    """Teacher ``index``'s outputs for a batch, from per-sample stored bank entries
    (``SyntheticBankDataset``): the teacher is not run."""
    key = f'teacher{index}'
    entries = []
    for entry in stored:
        if key not in entry:
            raise KeyError(f'The stored teacher outputs hold {sorted(entry)}, not {key}: '
                           'regenerate the bank with this config (--store-outputs).')
        entries.append(entry[key])
    out: dict = {}
    for spec in dict.fromkeys(sources):
        missing = [e for e in entries if spec not in e['sources']]
        if missing:
            raise KeyError(f'The stored teacher outputs lack the source {spec!r} (they hold '
                           f'{sorted(missing[0]["sources"])}): regenerate the bank with this '
                           'config (--store-outputs).')
        out[spec] = _concat_structures([e['sources'][spec] for e in entries], inputs)
    if needs_detections:
        out['detections'] = [InstanceData(**{k: v.to(inputs.device) for k, v in
                                             e['detections'].items()}) for e in entries]
    return out


def _concat_structures(structures: List[Any], like: Tensor) -> Any:
    """Concatenates per-sample outputs (tensors of batch 1, nested in lists/tuples) along the
    batch, on ``like``'s device and dtype."""
    first = structures[0]
    if isinstance(first, Tensor):
        return torch.cat(structures).to(device=like.device, dtype=like.dtype)
    return type(first)(_concat_structures(list(parts), like) for parts in zip(*structures))


def _bernoulli_kl(p: Tensor, q: Tensor) -> Tensor:
    """Elementwise KL divergence between Bernoulli distributions with means p and q."""
    return p * (p / q).log() + (1 - p) * ((1 - p) / (1 - q)).log()


def _forward_sources(detector: nn.Module, inputs: Tensor, names: Sequence[str]) -> None:
    """Runs a detector only as deep as the recorded submodules: backbone and neck through
    ``extract_feat``, then each other named module (a head) called on the features.

    mmdet's ``_forward`` calls ``bbox_head.forward`` directly, which skips forward hooks, so
    heads are called as modules here.
    """
    feats = detector.extract_feat(inputs)
    for name in dict.fromkeys(names):
        if name.split('.')[0] not in ('backbone', 'neck'):
            resolve_submodule(detector, name)(feats)


def _select(output: Any, index: Optional[int]) -> Any:
    return output if index is None else output[index]


def _as_levels(maps: Any, source: str) -> List[Tensor]:
    levels = [maps] if isinstance(maps, Tensor) else list(maps)
    if not all(isinstance(m, Tensor) and m.dim() == 4 for m in levels):
        raise TypeError(f'Source {source!r} is not a (list of) (N, C, H, W) feature maps; use a '
                        'module whose output is, e.g. "neck".')
    return levels


def _head_outputs(output: Any, source: str) -> Tuple[List[Tensor], List[Tensor]]:
    if not (isinstance(output, (tuple, list)) and len(output) >= 2):
        raise TypeError(f'Source {source!r} is not a dense head output (cls_scores, bbox_preds); '
                        'name the head module, e.g. "bbox_head".')
    return list(output[0]), list(output[1])


def _flatten_levels(maps: Sequence[Tensor], channels: int) -> Tensor:
    """(N, A*channels, H, W) per level -> (N * sum(H*W*A), channels), level-major per image
    like mmdet's prior order."""
    num = maps[0].shape[0]
    flat = [m.permute(0, 2, 3, 1).reshape(num, -1, channels) for m in maps]
    return torch.cat(flat, dim=1).reshape(-1, channels)


def _foreground_weight(detections: List[InstanceData], feature: Tensor, stride: int,
                       score_thr: float = 0.3, bg_weight: float = 0.1) -> Tensor:
    """1 inside the teacher's boxes scoring at least ``score_thr``, ``bg_weight`` elsewhere;
    shape (N, 1, H, W) of ``feature``."""
    num, _, height, width = feature.shape
    weight = feature.new_full((num, 1, height, width), bg_weight)
    for i, dets in enumerate(detections):
        boxes = dets.bboxes[dets.scores >= score_thr] / stride
        for x1, y1, x2, y2 in boxes.tolist():
            weight[i, :, int(y1):max(int(y1) + 1, int(round(y2))),
                   int(x1):max(int(x1) + 1, int(round(x2)))] = 1.0
    return weight


def _scaled(losses: Dict[str, Any], weight: float, prefix: str) -> Dict[str, Any]:
    out = {}
    for key, value in losses.items():
        if 'loss' in key:
            value = [v * weight for v in value] if isinstance(value, list) else value * weight
        out[prefix + key] = value
    return out


@contextmanager
def _shared_features(detector: nn.Module, inputs: Tensor) -> Iterator[None]:
    """Within the block, ``detector.extract_feat(inputs)`` runs the backbone once: the ground
    truth loss, the pseudo-box loss and the recorded sources share one feature pass."""
    original = detector.extract_feat
    cache: Dict[int, Any] = {}

    def extract_feat(batch_inputs: Tensor):
        if batch_inputs is not inputs:
            return original(batch_inputs)
        if id(batch_inputs) not in cache:
            cache[id(batch_inputs)] = original(batch_inputs)
        return cache[id(batch_inputs)]

    detector.extract_feat = extract_feat
    try:
        yield
    finally:
        del detector.extract_feat  # back to the class method


def _drop_teacher_keys(module: nn.Module, state_dict: dict, prefix: str, local_metadata) -> None:
    for key in [k for k in state_dict if k.startswith(prefix + 'teachers.')]:
        del state_dict[key]


def _ignore_missing_teacher_keys(module: nn.Module, incompatible_keys) -> None:
    missing = incompatible_keys.missing_keys
    missing[:] = [k for k in missing if not k.startswith('teachers.')]
