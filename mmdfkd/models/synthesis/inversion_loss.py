"""The loss synthetic images are made to minimize (DeepInversion, DIODE): the teachers should
detect the targets in them and see the statistics of their training data."""
import logging
from contextlib import nullcontext
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from mmdet.structures import DetDataSample
from mmengine.logging import print_log
from mmengine.structures import InstanceData
from torch import Tensor, nn

from ..utils.normalization import normalize_like
from .bn_statistics import BNStatisticsLoss, describe_bn_prior
from .box_augment import augment_with_boxes
from .competition import StudentTeacherDisagreement
from .image_priors import l2_prior, total_variation_l1, total_variation_l2
from .patch_similarity import PatchSimilarityLoss, attention_layers

if TYPE_CHECKING:
    from .base import Targets


class InversionLoss:
    """The inversion loss of images for their targets, differentiable in the images.

    With differentiable augmentations that move the boxes with the image (roll jitter, flip,
    brightness and contrast, optionally zoom and per-channel colour shift;
    :func:`augment_with_boxes`), the loss is, summed over teachers
    with their weights:

    - ``det_weight`` x the teacher's own detection loss toward the targets;
    - ``bn_weight`` x the BN-statistics distance (:class:`BNStatisticsLoss`, first BN layer
      weighted by ``bn_first_multiplier``), for teachers with BN running statistics;
    - ``psim_weight`` x the patch-similarity prior of PSAQ-ViT (:class:`PatchSimilarityLoss`:
      the patch tokens' cosine similarities should spread as on real images), for teachers
      with a timm ViT: what the inversion of a teacher without BN statistics can match;

    plus ``tv_l1_weight`` / ``tv_l2_weight`` total variation and ``l2_weight`` norm priors on
    the pixels, and, if ``adi_weight > 0``, the competition term of adaptive DeepInversion:
    ``adi_weight * (1 - competition(images))``, where ``competition`` measures how much the
    student disagrees with the teachers (:class:`StudentTeacherDisagreement`), so images the
    student already agrees on are penalized.

    Shared by every synthesizer: optimized pixels (:class:`InversionSynthesizer`) and a
    generator network (:class:`GeneratorSynthesizer`) minimize the same loss.

    Args:
        teachers: Frozen teacher detectors (eval mode), each with a ``data_preprocessor``.
        teacher_weights: One weight per teacher.
        det_weight: Weight of the teachers' detection loss. Defaults to 1.0.
        bn_weight: Weight of the BN-statistics loss. Defaults to 0.01.
        bn_first_multiplier: Extra weight of the first BN layer. Defaults to 10.
        tv_l1_weight: Weight of the L1 total variation. Defaults to 0.
        tv_l2_weight: Weight of the L2 total variation. Defaults to 0.001.
        l2_weight: Weight of the L2 norm prior. Defaults to 0.
        augment: Arguments of :func:`augment_with_boxes`. Defaults to jitter 8 px, flip,
            brightness 0.1, contrast 0.1.
        frozen_bn_prior: Whether to match the BN statistics of a teacher whose BN kept its
            pretraining statistics (``norm_eval=True``): they describe the pretraining images
            (e.g. ImageNet), not the detection data. Defaults to False (prior off for such a
            teacher; the log says so).
        adi_weight: Weight of the competition term. Defaults to 0 (off).
        psim_weight: Weight of the patch-similarity prior. Defaults to 0 (off).
        psim_cfg: Settings of :class:`PatchSimilarityLoss` (``num_pairs``, ``bins``,
            ``bandwidth``). Defaults to its defaults.
        competition: Callable mapping loader-space images (N, 3, H, W) to a scalar
            disagreement in [0, 1], differentiable in the images; needed if ``adi_weight > 0``
            (:meth:`from_models` builds it from the student).
    """

    def __init__(self,
                 teachers: Sequence[nn.Module],
                 teacher_weights: Sequence[float],
                 det_weight: float = 1.0,
                 bn_weight: float = 0.01,
                 bn_first_multiplier: float = 10.,
                 tv_l1_weight: float = 0.,
                 tv_l2_weight: float = 0.001,
                 l2_weight: float = 0.,
                 augment: Optional[dict] = None,
                 frozen_bn_prior: bool = False,
                 adi_weight: float = 0.,
                 psim_weight: float = 0.,
                 psim_cfg: Optional[dict] = None,
                 competition: Optional[Callable[[Tensor], Tensor]] = None) -> None:
        if adi_weight > 0 and competition is None:
            raise ValueError('adi_weight > 0 needs a competition callable (the student\'s '
                             'disagreement with the teachers); none was given.')
        self.teachers = list(teachers)
        self.teacher_weights = list(teacher_weights)
        self.det_weight = det_weight
        self.bn_weight = bn_weight
        self.bn_first_multiplier = bn_first_multiplier
        self.tv_l1_weight = tv_l1_weight
        self.tv_l2_weight = tv_l2_weight
        self.l2_weight = l2_weight
        self.augment = dict(jitter=8, flip=True, brightness=0.1, contrast=0.1)
        self.augment.update(augment or {})
        self.adi_weight = adi_weight
        self.competition = competition
        self.psim_weight = psim_weight
        self.psim_cfg = dict(psim_cfg or {})
        # Which teachers get the BN prior: decided once, and said.
        self.bn_prior = []
        for i, teacher in enumerate(self.teachers):
            status, message = describe_bn_prior(teacher)
            use = bn_weight > 0 and (status == 'trained' or
                                     (status == 'frozen' and frozen_bn_prior))
            if status == 'frozen':
                message += (' BN prior ON (frozen_bn_prior=True).' if use else
                            ' BN prior OFF: falling back to the other losses (set '
                            'frozen_bn_prior=True to match them anyway).')
            configured_but_off = status == 'none' and bn_weight > 0
            if configured_but_off:
                message += (f' bn_weight={bn_weight} is ignored for this teacher: set '
                            'bn_weight=0 to say so in the config, or use a teacher with '
                            'BatchNorm layers to have the BN prior.')
            print_log(f'Teacher {i}: {message}', 'current',
                      logging.WARNING if configured_but_off else logging.INFO)
            self.bn_prior.append(use)
        # Which teachers get the patch-similarity prior: those with a ViT.
        self.psim_prior = [psim_weight > 0 and bool(attention_layers(t)) for t in self.teachers]
        for i, (teacher, use) in enumerate(zip(self.teachers, self.psim_prior)):
            if psim_weight > 0 and not use:
                print_log(f'Teacher {i}: {type(teacher).__name__} has no timm '
                          f'VisionTransformer: psim_weight={psim_weight} is ignored for it.',
                          'current', logging.WARNING)

    @classmethod
    def from_models(cls, teachers: Sequence[nn.Module], teacher_weights: Sequence[float],
                    student: Optional[nn.Module] = None, **kwargs) -> 'InversionLoss':
        """The loss of these teachers; with ``adi_weight > 0`` the competition term is the
        student's :class:`StudentTeacherDisagreement` with them.

        Raises:
            ValueError: If ``adi_weight > 0`` and there is no student, or its head and the
                teachers' do not share locations.
        """
        competition = None
        if kwargs.get('adi_weight', 0) > 0:
            if student is None:
                raise ValueError('adi_weight > 0 needs the student (the competition term '
                                 'measures its disagreement with the teachers); set '
                                 'adi_weight=0 or synthesize for a distiller.')
            competition = StudentTeacherDisagreement(student, teachers, teacher_weights)
        return cls(teachers, teacher_weights, competition=competition, **kwargs)

    def __call__(self, pixels: Tensor, targets: 'Targets',
                 rng: torch.Generator) -> Tuple[Tensor, Dict[str, float]]:
        """The inversion loss of images for their targets.

        Args:
            pixels: Images in [0, 1], loader channel order, (N, 3, h, w). An image smaller
                than the targets' ``img_hw`` (the low-resolution phase of inversion) is scored
                at its own size: the boxes and the augmentation's jitter are scaled down with
                it, so the teachers run on a quarter of the pixels at half the size.
            targets: Their targets, boxes in pixels of ``targets.img_hw``, on the images'
                device.
            rng: Random source of the augmentations.

        Returns:
            ``(loss, parts)``: the scalar loss and its parts as floats, for logging
            (``syn_det_t{i}``, ``syn_bn_t{i}``, ``syn_psim_t{i}``, ``syn_tv_l1``,
            ``syn_tv_l2``, ``syn_l2``, ``syn_adi_disagreement``, ``syn_total``).
        """
        boxes, metainfo = targets.boxes, targets.metainfo
        scale = pixels.shape[-1] / targets.img_hw[1]
        if scale != 1:  # low-resolution phase: the teachers see the small image (DIODE)
            boxes = [b * scale for b in boxes]
            metainfo = [dict(m, img_shape=tuple(pixels.shape[-2:])) for m in metainfo]
        augment = dict(self.augment)
        if augment.get('jitter'):
            augment['jitter'] = max(1, round(augment['jitter'] * scale))
        augmented, moved, keep = augment_with_boxes(pixels, boxes, rng, **augment)
        kept_labels = [lb[k] for lb, k in zip(targets.labels, keep)]
        total = 0.
        log: Dict[str, float] = {}
        for i, teacher in enumerate(self.teachers):
            inputs = normalize_like(augmented * 255, teacher.data_preprocessor)
            samples = _training_samples(metainfo, inputs, moved, kept_labels)
            bn = BNStatisticsLoss(teacher, self.bn_first_multiplier) if self.bn_prior[i] \
                else nullcontext()
            psim = PatchSimilarityLoss(teacher, rng, **self.psim_cfg) if self.psim_prior[i] \
                else nullcontext()
            with bn, psim:
                det_losses = teacher.loss(inputs, samples)
            det = _sum_losses(det_losses)
            weight = self.teacher_weights[i]
            total = total + weight * self.det_weight * det
            log[f'syn_det_t{i}'] = float(det.detach())
            if self.bn_prior[i]:
                bn_loss = bn.loss()
                total = total + weight * self.bn_weight * bn_loss
                log[f'syn_bn_t{i}'] = float(bn_loss.detach())
            if self.psim_prior[i]:
                psim_loss = psim.loss()
                total = total + weight * self.psim_weight * psim_loss
                log[f'syn_psim_t{i}'] = float(psim_loss.detach())
        for name, weight, prior in (('tv_l1', self.tv_l1_weight, total_variation_l1),
                                    ('tv_l2', self.tv_l2_weight, total_variation_l2),
                                    ('l2', self.l2_weight, l2_prior)):
            if weight > 0:
                value = prior(pixels)
                total = total + weight * value
                log[f'syn_{name}'] = float(value.detach())
        if self.adi_weight > 0:
            disagreement = self.competition(augmented * 255)
            total = total + self.adi_weight * (1 - disagreement)
            log['syn_adi_disagreement'] = float(disagreement.detach())
        log['syn_total'] = float(total.detach())
        return total, log


def _training_samples(metainfo: List[dict], inputs: Tensor, boxes: List[Tensor],
                      labels: List[Tensor]) -> List[DetDataSample]:
    """Data samples for a teacher's ``loss``: the targets as ground truth, the batch's padded
    input shape."""
    shape = tuple(inputs.shape[-2:])
    samples = []
    for meta, box, label in zip(metainfo, boxes, labels):
        sample = DetDataSample(metainfo=dict(meta, batch_input_shape=shape, pad_shape=shape))
        sample.gt_instances = InstanceData(bboxes=box, labels=label)
        sample.ignored_instances = InstanceData(bboxes=box.new_zeros((0, 4)),
                                                labels=label.new_zeros(0))
        samples.append(sample)
    return samples


def _sum_losses(losses: Dict[str, object]) -> Tensor:
    """Sum of the entries whose key contains 'loss' (values may be lists of tensors)."""
    total = 0.
    for key, value in losses.items():
        if 'loss' in key:
            total = total + (sum(value) if isinstance(value, (list, tuple)) else value)
    return total
