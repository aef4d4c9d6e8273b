"""Synthesize images for sampled targets by inverting frozen teacher detectors (DeepInversion,
DIODE)."""
import logging
import math
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import bbox_overlaps
from mmengine.logging import print_log
from mmengine.structures import InstanceData
from torch import Tensor, nn

from ..distillers.normalization import normalize_like
from ..losses.pseudo_box_loss import weighted_box_fusion
from .bn_statistics import BNStatisticsLoss, describe_bn_prior
from .box_augment import augment_with_boxes
from .image_priors import l2_prior, total_variation_l1, total_variation_l2


class NonFiniteSynthesisError(FloatingPointError):
    """A synthesis step met a NaN or inf loss, gradient or image; nothing was updated with it."""


def describe_parts(parts: Dict[str, float]) -> str:
    """Loss parts as ``name=value`` pairs, for messages."""
    return ', '.join(f'{key}={value:.4g}' for key, value in parts.items())


@dataclass
class Cohort:
    """A batch of images refined together.

    Attributes:
        pixels: The optimized images, (B, 3, h, w) in [0, 1], loader channel order (BGR). At
            low resolution during the first ``lowres_steps`` refinements.
        optimizer: Adam over ``pixels``.
        boxes: Per image, target boxes (K, 4) in full-resolution pixels.
        labels: Per image, target labels (K,).
        metainfo: Per image, the data sample metainfo (``img_shape`` etc.).
        full_hw: Full image size (H, W).
        age: Refinement steps done.
    """
    pixels: Tensor
    optimizer: torch.optim.Optimizer
    boxes: List[Tensor]
    labels: List[Tensor]
    metainfo: List[dict]
    full_hw: Tuple[int, int]
    age: int = 0
    log: Dict[str, float] = field(default_factory=dict)


class DetectorInverter:
    """Optimizes images, from noise, so that frozen teacher detectors see the sampled targets in
    them and their BatchNorm statistics are reproduced.

    Per step, with differentiable augmentations that move the boxes with the image (roll
    jitter, flip, brightness and contrast), the loss is, summed over teachers with their
    weights:

    - ``det_weight`` x the teacher's own detection loss toward the targets;
    - ``bn_weight`` x the BN-statistics distance (:class:`BNStatisticsLoss`, first BN layer
      weighted by ``bn_first_multiplier``), for teachers with BN running statistics;

    plus ``tv_l1_weight`` / ``tv_l2_weight`` total variation and ``l2_weight`` norm priors on
    the pixels, and, if ``adi_weight > 0``, the competition term of adaptive DeepInversion:
    ``adi_weight * (1 - competition(images))``, where ``competition`` measures how much the
    student disagrees with the teachers (e.g. ``DetectionDistiller.score_disagreement``), so
    images the student already agrees on are penalized. Adam updates the pixels (cosine learning rate over ``total_steps``), which are
    clamped to the valid range after each step. The first ``lowres_steps`` steps optimize a
    ``lowres_scale`` image, which the teachers score at that size (as DIODE does, so these
    steps are cheap), that is then upsampled (multi-resolution schedule). From step
    ``fp_sampling['start']`` on, every ``fp_sampling['interval']`` steps, confident teacher
    detections that match no target become targets (DIODE's false-positive sampling).

    Args:
        teachers: Frozen teacher detectors (eval mode), each with a ``data_preprocessor``.
        teacher_weights: One weight per teacher.
        total_steps: Refinement steps a cohort gets in all (for the learning-rate schedule).
        lr: Adam learning rate on pixels in [0, 1]. Defaults to 0.1.
        betas: Adam betas. Defaults to (0.5, 0.9) (DeepInversion).
        det_weight: Weight of the teachers' detection loss. Defaults to 1.0.
        bn_weight: Weight of the BN-statistics loss. Defaults to 0.01.
        bn_first_multiplier: Extra weight of the first BN layer. Defaults to 10.
        tv_l1_weight: Weight of the L1 total variation. Defaults to 0.
        tv_l2_weight: Weight of the L2 total variation. Defaults to 0.001.
        l2_weight: Weight of the L2 norm prior. Defaults to 0.
        augment: Arguments of :func:`augment_with_boxes`. Defaults to jitter 8 px, flip,
            brightness 0.1, contrast 0.1.
        lowres_steps: Steps at low resolution before upsampling. Defaults to 0.
        lowres_scale: Size factor of the low-resolution phase. Defaults to 0.5.
        fp_sampling: ``dict(start, interval, score_thr, iou_thr, area_range, max_boxes)`` or
            None (off).
        init: ``'smooth'`` (low-frequency noise, upsampled) or ``'noise'`` (pixel noise).
            Defaults to ``'smooth'``.
        frozen_bn_prior: Whether to match the BN statistics of a teacher whose BN kept its
            pretraining statistics (``norm_eval=True``): they describe the pretraining images
            (e.g. ImageNet), not the detection data. Defaults to False (prior off for such a
            teacher; the log says so).
        adi_weight: Weight of the competition term. Defaults to 0 (off).
        competition: Callable mapping loader-space images (N, 3, H, W) to a scalar
            disagreement in [0, 1], differentiable in the images; needed if ``adi_weight > 0``.
    """

    def __init__(self,
                 teachers: Sequence[nn.Module],
                 teacher_weights: Sequence[float],
                 total_steps: int,
                 lr: float = 0.1,
                 betas: Tuple[float, float] = (0.5, 0.9),
                 det_weight: float = 1.0,
                 bn_weight: float = 0.01,
                 bn_first_multiplier: float = 10.,
                 tv_l1_weight: float = 0.,
                 tv_l2_weight: float = 0.001,
                 l2_weight: float = 0.,
                 augment: Optional[dict] = None,
                 lowres_steps: int = 0,
                 lowres_scale: float = 0.5,
                 fp_sampling: Optional[dict] = None,
                 init: str = 'smooth',
                 frozen_bn_prior: bool = False,
                 adi_weight: float = 0.,
                 competition: Optional[Callable[[Tensor], Tensor]] = None) -> None:
        if total_steps < 1:
            raise ValueError(f'total_steps must be at least 1, got {total_steps}.')
        if not 0 <= lowres_steps < total_steps:
            raise ValueError(f'lowres_steps={lowres_steps} must be in [0, total_steps='
                             f'{total_steps}).')
        if init not in ('smooth', 'noise'):
            raise ValueError(f"init must be 'smooth' or 'noise', got {init!r}.")
        if adi_weight > 0 and competition is None:
            raise ValueError('adi_weight > 0 needs a competition callable (the student\'s '
                             'disagreement with the teachers); none was given.')
        self.teachers = list(teachers)
        self.teacher_weights = list(teacher_weights)
        self.total_steps = total_steps
        self.lr = lr
        self.betas = tuple(betas)
        self.det_weight = det_weight
        self.bn_weight = bn_weight
        self.bn_first_multiplier = bn_first_multiplier
        self.tv_l1_weight = tv_l1_weight
        self.tv_l2_weight = tv_l2_weight
        self.l2_weight = l2_weight
        self.augment = dict(jitter=8, flip=True, brightness=0.1, contrast=0.1)
        self.augment.update(augment or {})
        self.lowres_steps = lowres_steps
        self.lowres_scale = lowres_scale
        self.fp_sampling = None if fp_sampling is None else dict(
            dict(start=total_steps // 2, interval=max(1, total_steps // 10), score_thr=0.3,
                 iou_thr=0.35, area_range=(0.01, 0.85), max_boxes=10), **fp_sampling)
        self.init = init
        self.adi_weight = adi_weight
        self.competition = competition
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

    @classmethod
    def from_distiller(cls, distiller: nn.Module, **kwargs) -> 'DetectorInverter':
        """An inverter of a ``DetectionDistiller``'s teachers; with ``adi_weight > 0`` its
        ``score_disagreement`` is the competition term.

        Args:
            distiller: The distiller (unwrapped from DDP).
            **kwargs: The other arguments of :class:`DetectorInverter`.
        """
        competition = distiller.score_disagreement if kwargs.get('adi_weight', 0) > 0 else None
        return cls(distiller.teachers, distiller.teacher_weights, competition=competition,
                   **kwargs)

    # ------------------------------------------------------------------------------ cohorts
    def start(self, boxes: List[Tensor], labels: List[Tensor], metainfo: List[dict],
              full_hw: Tuple[int, int], generator: torch.Generator) -> Cohort:
        """Starts a cohort of images for the given targets, from noise.

        Args:
            boxes: Per image, target boxes (K, 4) in pixels of a ``full_hw`` image.
            labels: Per image, target labels (K,).
            metainfo: Per image, metainfo for the data samples.
            full_hw: Image size (H, W).
            generator: Random source.

        Returns:
            The new cohort, at age 0.
        """
        num = len(boxes)
        device = self._device()
        height, width = full_hw
        if self.lowres_steps > 0:
            height, width = (max(8, round(height * self.lowres_scale)),
                             max(8, round(width * self.lowres_scale)))
        if self.init == 'smooth':
            coarse = torch.rand(num, 3, max(2, height // 16), max(2, width // 16),
                                generator=generator)
            pixels = F.interpolate(coarse, size=(height, width), mode='bicubic',
                                   align_corners=False)
            pixels = pixels + 0.05 * torch.randn(pixels.shape, generator=generator)
        else:
            pixels = 0.5 + 0.2 * torch.randn(num, 3, height, width, generator=generator)
        pixels = pixels.clamp(0, 1).to(device).requires_grad_(True)
        return Cohort(pixels=pixels, optimizer=self._optimizer(pixels),
                      boxes=[b.float().to(device) for b in boxes],
                      labels=[lb.long().to(device) for lb in labels],
                      metainfo=[dict(m) for m in metainfo], full_hw=tuple(full_hw))

    def refine(self, cohort: Cohort, steps: int, generator: torch.Generator) -> Dict[str, float]:
        """Refines a cohort by ``steps`` optimizer steps (no more than its remaining steps).

        Returns:
            Mean of each logged loss over these steps.

        Raises:
            NonFiniteSynthesisError: If a step's loss or gradient is not finite; that step
                leaves the pixels as they were. The cohort should then be started again.
        """
        sums: Dict[str, float] = {}
        done = 0
        for _ in range(steps):
            if cohort.age >= self.total_steps:
                break
            if cohort.age == self.lowres_steps and self.lowres_steps > 0:
                self._upsample(cohort)
            for group in cohort.optimizer.param_groups:
                group['lr'] = self.lr * 0.5 * (1 + math.cos(math.pi * cohort.age /
                                                            self.total_steps))
            loss, log = self.loss(cohort, generator)
            if not torch.isfinite(loss):
                raise NonFiniteSynthesisError(
                    f'non-finite inversion loss at step {cohort.age} of a cohort '
                    f'({describe_parts(log)})')
            (grad, ) = torch.autograd.grad(loss, [cohort.pixels])
            if not torch.isfinite(grad).all():
                raise NonFiniteSynthesisError(
                    f'non-finite gradient of the inversion loss at step {cohort.age} of a '
                    f'cohort ({describe_parts(log)})')
            cohort.pixels.grad = grad
            cohort.optimizer.step()
            with torch.no_grad():
                cohort.pixels.clamp_(0, 1)
            cohort.age += 1
            done += 1
            for key, value in log.items():
                sums[key] = sums.get(key, 0.) + value
            fp = self.fp_sampling
            if fp and cohort.age >= fp['start'] and (cohort.age - fp['start']) % fp['interval'] == 0:
                self.sample_false_positives(cohort)
        cohort.log = {key: value / max(done, 1) for key, value in sums.items()}
        return cohort.log

    def finished(self, cohort: Cohort) -> bool:
        """Whether the cohort has had all its refinement steps."""
        return cohort.age >= self.total_steps

    @torch.no_grad()
    def images(self, cohort: Cohort) -> Tensor:
        """The cohort's images in loader pixel space: (B, 3, H, W) float, values 0-255 rounded
        to integers (as a real image would be)."""
        return (self._full(cohort.pixels.detach(), cohort.full_hw) * 255).round()

    # ------------------------------------------------------------------------------- losses
    def loss(self, cohort: Cohort, generator: torch.Generator) -> Tuple[Tensor, Dict[str, float]]:
        """The inversion loss of one refinement step of a cohort and its parts."""
        return self.image_loss(cohort.pixels, cohort.boxes, cohort.labels, cohort.metainfo,
                               cohort.full_hw, generator)

    def image_loss(self, pixels: Tensor, boxes: List[Tensor], labels: List[Tensor],
                   metainfo: List[dict], full_hw: Tuple[int, int],
                   generator: torch.Generator) -> Tuple[Tensor, Dict[str, float]]:
        """The inversion loss of images for their targets, differentiable in ``pixels``.

        Shared by the optimized cohorts and by a generator network producing the images.

        Args:
            pixels: Images in [0, 1], loader channel order, (N, 3, h, w). An image smaller
                than ``full_hw`` (the low-resolution phase) is scored at its own size: the
                boxes and the augmentation's jitter are scaled down with it, so the teachers
                run on a quarter of the pixels at ``lowres_scale`` 0.5.
            boxes: Per image, target boxes (K, 4) in ``full_hw`` pixels.
            labels: Per image, target labels (K,).
            metainfo: Per image, data sample metainfo.
            full_hw: Image size (H, W).
            generator: Random source of the augmentations.

        Returns:
            ``(loss, parts)``: the scalar loss and its parts as floats, for logging.
        """
        scale = pixels.shape[-1] / full_hw[1]
        if scale != 1:  # low-resolution phase: the teachers see the small image (DIODE)
            boxes = [b * scale for b in boxes]
            metainfo = [dict(m, img_shape=tuple(pixels.shape[-2:])) for m in metainfo]
        augment = dict(self.augment)
        if augment.get('jitter'):
            augment['jitter'] = max(1, round(augment['jitter'] * scale))
        augmented, moved, keep = augment_with_boxes(pixels, boxes, generator, **augment)
        kept_labels = [lb[k] for lb, k in zip(labels, keep)]
        total = 0.
        log: Dict[str, float] = {}
        for i, teacher in enumerate(self.teachers):
            inputs = normalize_like(augmented * 255, teacher.data_preprocessor)
            samples = self._samples(metainfo, inputs, moved, kept_labels)
            bn = BNStatisticsLoss(teacher, self.bn_first_multiplier) if self.bn_prior[i] \
                else nullcontext()
            with bn:
                det_losses = teacher.loss(inputs, samples)
            det = _sum_losses(det_losses)
            weight = self.teacher_weights[i]
            total = total + weight * self.det_weight * det
            log[f'syn_det_t{i}'] = float(det.detach())
            if self.bn_prior[i]:
                bn_loss = bn.loss()
                total = total + weight * self.bn_weight * bn_loss
                log[f'syn_bn_t{i}'] = float(bn_loss.detach())
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

    @torch.no_grad()
    def sample_false_positives(self, cohort: Cohort) -> None:
        """Adds confident teacher detections that overlap no target as new targets (DIODE).

        A detection is added if its (teacher-weighted, fused) score is at least ``score_thr``,
        its IoU with every target is below ``iou_thr``, its area is within ``area_range`` (as a
        share of the image area) and the image has fewer than ``max_boxes`` targets.
        """
        fp = self.fp_sampling
        pixels = self._full(cohort.pixels, cohort.full_hw) * 255
        per_teacher = []
        for teacher in self.teachers:
            inputs = normalize_like(pixels, teacher.data_preprocessor)
            samples = [DetDataSample(metainfo=self._meta(m, inputs)) for m in cohort.metainfo]
            per_teacher.append([r.pred_instances for r in
                                teacher.predict(inputs, samples, rescale=False)])
        image_area = cohort.full_hw[0] * cohort.full_hw[1]
        for i in range(len(cohort.boxes)):
            dets = weighted_box_fusion([p[i] for p in per_teacher], self.teacher_weights,
                                       fp['score_thr'], iou_thr=0.55)
            for box, label in zip(dets.bboxes, dets.labels):
                if len(cohort.boxes[i]) >= fp['max_boxes']:
                    break
                area = float((box[2] - box[0]) * (box[3] - box[1])) / image_area
                if not fp['area_range'][0] <= area <= fp['area_range'][1]:
                    continue
                if len(cohort.boxes[i]) and bbox_overlaps(box[None], cohort.boxes[i]).max() \
                        >= fp['iou_thr']:
                    continue
                cohort.boxes[i] = torch.cat([cohort.boxes[i], box[None].float()])
                cohort.labels[i] = torch.cat([cohort.labels[i], label[None].long()])

    # ------------------------------------------------------------------------------ helpers
    def _samples(self, metainfo: List[dict], inputs: Tensor, boxes: List[Tensor],
                 labels: List[Tensor]) -> List[DetDataSample]:
        samples = []
        for meta, box, label in zip(metainfo, boxes, labels):
            sample = DetDataSample(metainfo=self._meta(meta, inputs))
            sample.gt_instances = InstanceData(bboxes=box, labels=label)
            sample.ignored_instances = InstanceData(bboxes=box.new_zeros((0, 4)),
                                                    labels=label.new_zeros(0))
            samples.append(sample)
        return samples

    @staticmethod
    def _meta(meta: dict, inputs: Tensor) -> dict:
        return dict(meta, batch_input_shape=tuple(inputs.shape[-2:]),
                    pad_shape=tuple(inputs.shape[-2:]))

    def _upsample(self, cohort: Cohort) -> None:
        with torch.no_grad():
            full = self._full(cohort.pixels, cohort.full_hw).clamp(0, 1)
        cohort.pixels = full.requires_grad_(True)
        cohort.optimizer = self._optimizer(cohort.pixels)

    @staticmethod
    def _full(pixels: Tensor, full_hw: Tuple[int, int]) -> Tensor:
        if tuple(pixels.shape[-2:]) == tuple(full_hw):
            return pixels
        return F.interpolate(pixels, size=full_hw, mode='bilinear', align_corners=False)

    def _optimizer(self, pixels: Tensor) -> torch.optim.Optimizer:
        return torch.optim.Adam([pixels], lr=self.lr, betas=self.betas)

    def _device(self) -> torch.device:
        return next(self.teachers[0].parameters()).device


def _sum_losses(losses: Dict[str, object]) -> Tensor:
    """Sum of the entries whose key contains 'loss' (values may be lists of tensors)."""
    total = 0.
    for key, value in losses.items():
        if 'loss' in key:
            total = total + (sum(value) if isinstance(value, (list, tuple)) else value)
    return total
