"""A student detector trained against one or more frozen teacher detectors."""
import copy
import re
from itertools import chain
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmdet.models.detectors import BaseDetector
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample, OptSampleList, SampleList
from mmengine.config import ConfigDict
from mmengine.logging import print_log
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from ...structures import collate_teacher_outputs
from ..losses.utils import check_loss_weight
from ..utils.detector_runs import forward_sources, shared_features
from ..utils.normalization import normalize_like, renormalize
from ..utils.recorder import ModuleOutputRecorder
from .inheritance import inherit_weights, inheritance_pairs, parse_inherit
from .sources import record_sources, select_sources, source_modules
from .teacher_loader import load_teacher_checkpoint, resolve_teacher_config
from .terms import TermBatch, build_term, check_unique_names, scale_losses


def _num_classes(detector: nn.Module) -> Optional[int]:
    for name in ('bbox_head', 'roi_head.bbox_head'):
        try:
            return int(detector.get_submodule(name).num_classes)
        except AttributeError:
            continue
    return None


@MODELS.register_module()
class DetectionDistiller(BaseDetector):
    """Trains a student detector with distillation losses from frozen teacher detectors.

    The student is any mmdet detector; each teacher is an mmdet detector built from its own
    config and loaded from its checkpoint once, strictly, with ``weights_only=True``. Teachers
    are frozen child modules (they follow ``.to()``, ``.half()`` and AMP), stay in eval mode,
    run under ``torch.no_grad()`` only as deep as the configured terms need, and are left out of
    this model's ``state_dict`` (and so of training checkpoints; a state-dict post-hook drops
    them, and a load post-hook accepts their absence). Each teacher receives the batch
    normalized the way its own data preprocessor would (mean, std, channel order, padding).
    Under ``DistributedDataParallel`` the teachers' parameters and buffers are ignored: they are
    neither broadcast nor synchronized (every rank loads the same checkpoint), and no
    ``find_unused_parameters`` is needed for them. torch has no public way to say so; this is
    the one private torch call of the distiller,
    ``DistributedDataParallel._set_params_and_buffers_to_ignore_for_model``.

    The student's own detection loss on the batch's ground truth is kept with weight
    ``gt_loss_weight`` (0 turns it off, e.g. when the only targets are sampled boxes).
    Distillation terms are listed in ``distill_losses``; each names a registered loss whose
    ``input_kind`` picks the term class in :data:`mmdfkd.registry.DISTILL_TERMS`
    (:mod:`mmdfkd.models.distillers.terms`), which binds the loss to the sources it compares
    (:mod:`mmdfkd.models.distillers.sources`):

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

    Log keys: the student's own ground-truth losses keep mmdet's keys (``loss_cls``,
    ``loss_bbox``, ...). A distillation term logs ``loss_<name>``, or, if its loss yields
    several parts (the detections term calls the student's head loss),
    ``loss_<name>_<part>`` (``loss_PseudoBoxLoss_cls``, ``loss_PseudoBoxLoss_bbox``); entries
    that are only logged (no ``loss`` in mmdet's key, e.g. R-CNN's ``acc``) become
    ``<name>_<key>``. A term's name is its ``name`` key, by default the loss type and student
    source (``PKDLoss_neck``, or ``PseudoBoxLoss``); two terms with the same name are a build
    error.

    Terms that run the student's own loss and the ground-truth loss share one backbone pass:
    mmdet's ``loss`` takes no precomputed features, so the student's ``extract_feat`` is
    shadowed on the instance for the duration of :meth:`loss` (see
    :func:`mmdfkd.models.utils.shared_features`).

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
            teachers the term uses, default all), ``name`` (unique among the terms) and
            ``fg_mask``. A key the term's kind does not read is a build error.
        gt_loss_weight: Weight of the student's own loss on the batch's ground truth, >= 0.
        inherit: Student submodules that start from the first teacher's weights instead of
            their own initialization (FGD's inheriting strategy): a name (e.g.
            ``'bbox_head'``), the same in both, or ``dict(student=NAME, teacher=NAME)`` where
            the names differ (a hybrid ViT's stem, ``'backbone.vit.patch_embed.stem'``, from
            the teacher's ``'backbone'``). Every parameter and buffer with a same-named,
            same-shaped teacher counterpart is copied by ``init_weights``; norm layers of
            another type (GroupNorm from BatchNorm) take the affine weight and bias. Checked
            at build time: the submodules must exist and their shapes must match.
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
                 inherit: Union[str, dict, Sequence[Union[str, dict]]] = (),
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
        # The one private torch call here: DDP has no public way to leave modules out of its
        # broadcast and gradient synchronization (pytorch/pytorch#43690).
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(
            self, [f'teachers.{name}' for name, _ in chain(self.teachers.named_parameters(),
                                                          self.teachers.named_buffers())])

        self.gt_loss_weight = check_loss_weight('DetectionDistiller', gt_loss_weight,
                                                'model.gt_loss_weight')
        self.class_mapping = {int(k): int(v) for k, v in (class_mapping or {}).items()}
        self._check_classes()
        self.predict_with = predict_with
        self._teacher_to_predict()  # validates predict_with
        try:
            self.inherit = parse_inherit(inherit)
        except ValueError as error:
            raise ValueError(f'model.{error.args[0]}') from None
        for module, teacher_module in self.inherit:
            try:
                inheritance_pairs(self.student, self.teachers[0], module, teacher_module)
            except (KeyError, ValueError) as error:
                raise type(error)(f'model.{error.args[0]}') from None

        self.terms = nn.ModuleList(
            build_term(i, cfg, self.student, self.teachers, self.class_mapping)
            for i, cfg in enumerate(distill_losses))
        check_unique_names(self.terms)
        self._probe(probe_shape)
        self.register_state_dict_post_hook(_drop_teacher_keys)
        self.register_load_state_dict_pre_hook(_note_load_prefix)
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

    def _teacher_source_names(self, index: int) -> List[str]:
        """The sources the terms of teacher ``index`` read from it, each once."""
        return list(dict.fromkeys(
            s for term in self.terms if index in term.teacher_ids for s in term.teacher_sources))

    def _student_source_names(self) -> List[str]:
        """The sources the terms read from the student, each once."""
        return list(dict.fromkeys(s for term in self.terms for s in term.student_sources))

    @torch.no_grad()
    def _probe(self, shape: Tuple[int, int]) -> None:
        """Runs every model once on a blank input and lets each term measure the outputs it
        reads (to match levels and build adapters); logs the terms."""
        if not self.terms:
            return
        was_training = self.student.training
        self.student.eval()
        inputs = torch.zeros(1, 3, *shape)
        student_out = record_sources(self.student, self._student_source_names(), inputs)
        self.student.train(was_training)
        teacher_out = []
        for index, teacher in enumerate(self.teachers):
            sources = self._teacher_source_names(index)
            teacher_inputs = renormalize(inputs, self.data_preprocessor,
                                         teacher.data_preprocessor)
            teacher_out.append(record_sources(teacher, sources, teacher_inputs)
                               if sources else {})
        for term in self.terms:
            term.probe(student_out, teacher_out, shape)
        print_log('DetectionDistiller terms: ' + '; '.join(term.describe() for term in self.terms),
                  'current')

    @torch.no_grad()
    def teacher_sources(self, index: int, images: Tensor) -> Dict[str, Any]:
        """Teacher ``index``'s outputs for the sources its terms read, on loader-space images:
        what a stored bank of teacher outputs holds (``tools/generate_synthetic.py
        --store-outputs``, in the format of :mod:`mmdfkd.structures.teacher_outputs`).

        Args:
            index: Teacher index.
            images: Images in the data loader's pixel space (BGR, 0-255), (N, 3, H, W).

        Returns:
            ``{source: output}``, outputs as the modules return them (tensors, lists, tuples).
        """
        teacher = self.teachers[index]
        return record_sources(teacher, self._teacher_source_names(index),
                              normalize_like(images, teacher.data_preprocessor))

    # ------------------------------------------------------------------------- training
    def train(self, mode: bool = True) -> 'DetectionDistiller':
        """Sets train mode on the student; teachers stay in eval mode."""
        super().train(mode)
        for teacher in self.teachers:
            teacher.eval()
        return self

    def init_weights(self) -> None:
        """Initializes the student (the ``inherit`` submodules from the first teacher) and the
        terms' learned parts (adapters); the loaded teachers are left alone."""
        self.student.init_weights()
        for module, teacher_module in self.inherit:
            kept = inherit_weights(self.student, self.teachers[0], module, teacher_module)
            print_log(f'DetectionDistiller: student {module} inherited from teacher 0 '
                      f'({teacher_module})'
                      + (f'; kept as initialized: {", ".join(kept)}' if kept else ''),
                      logger='current')
        for term in self.terms:
            term.reset_parameters()

    def loss(self, batch_inputs: Tensor, batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """Student's ground-truth loss and the distillation terms of one batch.

        The teachers run first (or their stored outputs are read). The ground-truth loss and
        the terms that run the student's own loss share one backbone pass, which also records
        the student's sources; the other terms then compute from the recorded outputs.

        Args:
            batch_inputs: Images normalized by the student's preprocessor, (N, 3, H, W).
            batch_data_samples: Data samples with ``gt_instances`` (real or sampled targets);
                with ``teacher_outputs`` (a stored bank's entries), the teachers do not run.

        Returns:
            Loss dict, keys as in the class docstring; keys with ``loss`` are summed by
            mmengine.

        Raises:
            RuntimeError: If two entries get the same key.
        """
        batch = TermBatch(
            inputs=batch_inputs, data_samples=batch_data_samples, student=self.student,
            teachers=self.teachers, teacher_weights=self.teacher_weights,
            teacher_outputs=[self._run_teacher(t, batch_inputs, batch_data_samples)
                             for t in range(len(self.teachers))])
        sources = self._student_source_names()
        names = source_modules(self.student, sources)
        losses: Dict[str, Tensor] = {}
        with shared_features(self.student, batch_inputs), ModuleOutputRecorder(
                self.student, names) as recorded:
            if self.gt_loss_weight > 0:
                _add_losses(losses, scale_losses(
                    self.student.loss(batch_inputs, batch_data_samples), self.gt_loss_weight))
            for term in self.terms:
                if term.runs_student_loss:
                    _add_losses(losses, term.compute(batch))
            unrecorded = [name for name in names if name not in recorded]
            if unrecorded:
                forward_sources(self.student, batch_inputs, unrecorded)
        batch.student_outputs = select_sources(self.student, sources, recorded)
        for term in self.terms:
            if not term.runs_student_loss:
                _add_losses(losses, term.compute(batch))
        return losses

    @torch.no_grad()
    def _run_teacher(self, index: int, inputs: Tensor, data_samples: SampleList) -> dict:
        """Runs teacher ``index`` as deep as the terms need, or reads its stored outputs.

        Returns:
            ``{source: output}`` for its terms' sources and, if a term needs them,
            ``'detections'``: per image, ``InstanceData`` in input pixels. ``{}`` if no term
            uses the teacher.
        """
        teacher = self.teachers[index]
        sources = self._teacher_source_names(index)
        needs_detections = any(term.needs_detections for term in self.terms
                               if index in term.teacher_ids)
        if not sources and not needs_detections:
            return {}
        stored = [sample.get('teacher_outputs') for sample in data_samples]
        if all(entry is not None for entry in stored):
            return collate_teacher_outputs(stored, index, sources, needs_detections, inputs)
        names = source_modules(teacher, sources)
        teacher_inputs = renormalize(inputs, self.data_preprocessor, teacher.data_preprocessor)
        out: dict = {}
        with ModuleOutputRecorder(teacher, names) as recorded:
            if needs_detections:
                samples = [DetDataSample(metainfo=s.metainfo) for s in data_samples]
                results = teacher.predict(teacher_inputs, samples, rescale=False)
                out['detections'] = [r.pred_instances for r in results]
            else:
                forward_sources(teacher, teacher_inputs, names)
        out.update(select_sources(teacher, sources, recorded))
        return out

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
def _add_losses(losses: Dict[str, Any], new: Dict[str, Any]) -> None:
    """Adds ``new`` to ``losses``; refuses to overwrite an entry."""
    clash = sorted(set(losses) & set(new))
    if clash:
        raise RuntimeError(f'DetectionDistiller: the loss entries {clash} are given twice (a '
                           "term's name makes its keys equal to the student's own or another "
                           "term's); set a different `name='...'` on the term in "
                           'model.distill_losses.')
    losses.update(new)


def _drop_teacher_keys(module: nn.Module, state_dict: dict, prefix: str,
                       local_metadata: dict) -> None:
    """State-dict post-hook: removes the teachers' entries (they load from their own files)."""
    for key in [k for k in state_dict if k.startswith(prefix + 'teachers.')]:
        del state_dict[key]


def _note_load_prefix(module: nn.Module, state_dict: dict, prefix: str, *args) -> None:
    """Load pre-hook: remembers the distiller's key prefix in the state dict being loaded
    (``''``, or its name in a parent module) for :func:`_ignore_missing_teacher_keys`."""
    module._load_prefix = prefix


def _ignore_missing_teacher_keys(module: nn.Module, incompatible_keys) -> None:
    """Load post-hook: a state dict without the teachers' entries loads strictly."""
    teacher_prefix = getattr(module, '_load_prefix', '') + 'teachers.'
    missing = incompatible_keys.missing_keys
    missing[:] = [k for k in missing if not k.startswith(teacher_prefix)]
