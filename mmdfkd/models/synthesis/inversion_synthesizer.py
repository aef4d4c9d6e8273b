"""Synthesize images by optimizing their pixels, from noise, against frozen teacher detectors
(DeepInversion, DIODE), amortized over training."""
import math
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import bbox_overlaps
from torch import Tensor

from mmdfkd.registry import SYNTHESIZERS
from ..utils.box_fusion import weighted_box_fusion
from ..utils.detector_runs import predict_images
from ..utils.lanczos import lanczos_resize
from .base import (NonFiniteSynthesisError, Retry, SyntheticBatch, Synthesizer, Targets,
                   describe_parts, run_once)
from .image_buffer import ImageBuffer
from .image_parameterization import IMAGE_PARAMETERIZATIONS
from .starting_images import STARTING_IMAGES

#: ``upsample`` modes of :class:`InversionSynthesizer`: the Lanczos order, None for bilinear.
UPSAMPLING_MODES = {'bilinear': None, 'lanczos3': 3, 'lanczos5': 5}


@dataclass
class Cohort:
    """A batch of images refined together.

    Attributes:
        params: The optimized parameters of the images (:mod:`.image_parameterization`: the
            pixels, or their spectrum).
        hw: The size (h, w) the images are optimized at: low resolution during the first
            ``lowres_steps`` refinements.
        optimizer: Adam over ``params``.
        targets: Their targets, on the pixels' device, boxes in full-resolution pixels;
            false-positive sampling adds boxes.
        age: Refinement steps done.
        log: Mean loss parts of the last :meth:`InversionSynthesizer.refine` call.
        origin: What recomputes the cohort exactly (:meth:`InversionSynthesizer.state_dict`):
            ``targets`` (on the CPU, as the cohort started), ``start_rng`` (the random state
            its noise was drawn from) and ``refine_calls``, per refine call the random state
            it started from and the steps it was asked for.
    """
    params: Tensor
    hw: Tuple[int, int]
    optimizer: torch.optim.Optimizer
    targets: Targets
    age: int = 0
    log: Dict[str, float] = field(default_factory=dict)
    origin: dict = field(default_factory=dict)

    @property
    def full_hw(self) -> Tuple[int, int]:
        """The full image size (H, W)."""
        return self.targets.img_hw


@SYNTHESIZERS.register_module()
class InversionSynthesizer(Synthesizer):
    """Optimizes images, from noise, so that frozen teacher detectors see the sampled targets in
    them and their BatchNorm statistics are reproduced (the :class:`InversionLoss`).

    Images are made in cohorts of one batch. Adam updates their parameters (the pixels, clamped
    to the valid range after each step, or a spectrum: ``parameterization``; cosine learning
    rate over ``total_steps``). The first
    ``lowres_steps`` steps optimize a ``lowres_scale`` image, which the teachers score at that
    size (as DIODE does, so these steps are cheap), that is then upsampled (multi-resolution
    schedule). From step ``fp_sampling['start']`` on, every ``fp_sampling['interval']`` steps,
    confident teacher detections that match no target become targets (DIODE's false-positive
    sampling).

    During training (:meth:`next_batch`) synthesis is amortized: every iteration the cohort in
    progress gets ``steps_per_iter`` refinement steps; once it has had all its ``total_steps``
    it joins a buffer of finished images (at most ``buffer_size``, oldest out first) and the
    targets of the iteration's batch start the next cohort (drawn only then: with
    ``SyntheticDetDataset(draw_targets=False)`` no other batch's targets are sampled). The
    batch handed to the student is drawn from the buffer, with its targets (including those
    added by false-positive sampling). Before the first batch, ``initial_cohorts`` cohorts are
    synthesized so the buffer is not a single batch.

    What a checkpoint holds (:meth:`state_dict`), and why:

    - the buffer, as uint8 images with their targets (79 MB a rank for the COCO recipe's 256
      images of 320x320): making it again would cost ``buffer_size / batch`` cohorts of
      ``total_steps`` steps (the synthesis of 1600 iterations in the COCO recipe) and train
      the student on a smaller buffer meanwhile;
    - the cohort in progress as what recomputes it, not as its float pixels and Adam moments
      (three float copies of the cohort: 59 MB a rank for 16 images of 320x320). A cohort is
      determined by its targets, the random state its noise was drawn from and the random
      state of each refine call (5 KB each, 0.5 MB at most in the COCO recipe);
      :meth:`load_state_dict` replays those calls. A resume so costs at most
      ``total_steps - 1`` refinement steps, once, and continues exactly as the run would have,
      except with the competition term on (``loss.adi_weight > 0``): it depends on the student
      of each step, which the replay only has as of the checkpoint.

    ``benchmarks/speed.py`` measures these sizes.

    Args:
        teachers, teacher_weights, student, dataset, loss: See :class:`Synthesizer`.
        total_steps: Refinement steps a cohort gets in all (for the learning-rate schedule).
        lr: Adam learning rate (on pixels in [0, 1] with the pixel parameterization).
            Defaults to 0.1.
        betas: Adam betas. Defaults to (0.5, 0.9) (DeepInversion).
        lowres_steps: Steps at low resolution before upsampling. Defaults to 0.
        lowres_scale: Size factor of the low-resolution phase. Defaults to 0.5.
        upsample: How low-resolution images are brought to full resolution (after the
            low-resolution phase, and for the teachers' and the buffer's full-size images):
            ``'bilinear'``, or ``'lanczos3'`` / ``'lanczos5'`` (:func:`lanczos_resize` of
            order 3 or 5, sharper; clamped to [0, 1], as Lanczos overshoots at edges).
            Defaults to ``'bilinear'``.
        parameterization: How the images are optimized (:mod:`.image_parameterization`):
            ``'pixels'``, or ``dict(type='fourier', decay=1.0)`` (a 1/f-scaled spectrum in
            decorrelated colours; about 4 times the learning rate). Defaults to ``'pixels'``.
        init: The starting images (:mod:`.starting_images`): ``'smooth'`` (low-frequency
            noise, upsampled), ``'noise'`` (pixel noise), ``'dead_leaves'`` (occluding discs,
            natural-image statistics) or ``'spectral'`` (1/f colour noise). Defaults to
            ``'smooth'``.
        fp_sampling: ``dict(start, interval, score_thr, iou_thr, area_range, max_boxes)`` or
            None (off). Defaults for missing keys: start ``total_steps // 2``, interval
            ``total_steps // 10`` (at least 1), score_thr 0.3, iou_thr 0.35, area_range
            (0.01, 0.85), max_boxes 10.
        steps_per_iter: Refinement steps per training iteration. Defaults to 10.
        buffer_size: Most finished images kept. Defaults to 64.
        initial_cohorts: Cohorts synthesized before training starts. Defaults to 1.

    Raises:
        ValueError: If a setting is out of range.
    """

    def __init__(self,
                 teachers,
                 teacher_weights: Sequence[float],
                 *,
                 total_steps: int,
                 student=None,
                 dataset=None,
                 loss: Optional[dict] = None,
                 lr: float = 0.1,
                 betas: Tuple[float, float] = (0.5, 0.9),
                 lowres_steps: int = 0,
                 lowres_scale: float = 0.5,
                 upsample: str = 'bilinear',
                 init: str = 'smooth',
                 parameterization: Union[str, dict] = 'pixels',
                 fp_sampling: Optional[dict] = None,
                 steps_per_iter: int = 10,
                 buffer_size: int = 64,
                 initial_cohorts: int = 1) -> None:
        if total_steps < 1:
            raise ValueError(f'total_steps must be at least 1, got {total_steps}.')
        if not 0 <= lowres_steps < total_steps:
            raise ValueError(f'lowres_steps={lowres_steps} must be in [0, total_steps='
                             f'{total_steps}).')
        if upsample not in UPSAMPLING_MODES:
            raise ValueError(f'upsample must be one of {list(UPSAMPLING_MODES)}, got '
                             f'{upsample!r}.')
        if init not in STARTING_IMAGES:
            raise ValueError(f'init must be one of {sorted(STARTING_IMAGES)}, got {init!r}.')
        if steps_per_iter < 1 or buffer_size < 1 or initial_cohorts < 1:
            raise ValueError('steps_per_iter, buffer_size and initial_cohorts must be >= 1, got '
                             f'{steps_per_iter}, {buffer_size}, {initial_cohorts}.')
        param_cfg = dict(type=parameterization) if isinstance(parameterization, str) \
            else dict(parameterization)
        param_type = param_cfg.pop('type', None)
        if param_type not in IMAGE_PARAMETERIZATIONS:
            raise ValueError(f'parameterization type must be one of '
                             f'{sorted(IMAGE_PARAMETERIZATIONS)}, got {param_type!r}.')
        super().__init__(teachers, teacher_weights, student, dataset, loss)
        self.parameterization = IMAGE_PARAMETERIZATIONS[param_type](**param_cfg)
        self.total_steps = total_steps
        self.lr = lr
        self.betas = tuple(betas)
        self.lowres_steps = lowres_steps
        self.lowres_scale = lowres_scale
        self.upsample = upsample
        self.init = init
        self.fp_sampling = None if fp_sampling is None else dict(
            dict(start=total_steps // 2, interval=max(1, total_steps // 10), score_thr=0.3,
                 iou_thr=0.35, area_range=(0.01, 0.85), max_boxes=10), **fp_sampling)
        self.steps_per_iter = steps_per_iter
        self.initial_cohorts = initial_cohorts
        self.buffer = ImageBuffer(buffer_size)
        self.cohort: Optional[Cohort] = None
        self.warmed_up = False  # initial cohorts synthesized (or restored from a checkpoint)

    @property
    def input_scales(self) -> Dict[str, float]:
        if not self.lowres_steps:
            return {}
        return {f'The low-resolution phase (lowres_scale={self.lowres_scale})':
                self.lowres_scale}

    # ----------------------------------------------------------------------------- training
    def next_batch(self, samples: Sequence[DetDataSample], rng: torch.Generator,
                   retry: Retry = run_once) -> SyntheticBatch:
        """Advances the cohort in progress by ``steps_per_iter`` steps (the first time, after
        filling the buffer with ``initial_cohorts`` cohorts), then draws the batch from the
        finished images.

        A cohort that meets non-finite values is started again from new noise for the same
        targets (``retry``'s redraw).
        """
        if self.cohort is None:
            self.cohort = self.start(self.targets_of(samples), rng)
        if not self.warmed_up:
            target = min(self.initial_cohorts * len(samples), self.buffer.capacity)
            while len(self.buffer) < target:
                self._refine(self.total_steps, rng, retry)
                self._finish_if_done(samples, rng)
            self.warmed_up = True
        log = self._refine(self.steps_per_iter, rng, retry)
        self._finish_if_done(samples, rng)
        images, targets = self.buffer.draw(len(samples), rng)
        return SyntheticBatch(images, targets, log)

    def synthesize(self, targets: Targets, rng: torch.Generator) -> SyntheticBatch:
        """One cohort for the targets, refined for all its ``total_steps``; the images skip
        the buffer."""
        cohort = self.start(targets, rng)
        first = self.refine(cohort, 1, rng)
        last = first
        if self.total_steps > 1:
            self.refine(cohort, self.total_steps - 2, rng)
            last = self.refine(cohort, 1, rng)
        return SyntheticBatch(list(self.images(cohort).to(torch.uint8).cpu()),
                              self._cpu_targets(cohort), log=last, first_log=first)

    def _refine(self, steps: int, rng: torch.Generator, retry: Retry) -> Dict[str, float]:

        def restart() -> None:  # new noise for the targets of the cohort
            self.cohort = self.start(self.cohort.targets, rng)

        return retry(lambda: self.refine(self.cohort, steps, rng), restart)

    def _finish_if_done(self, samples: Sequence[DetDataSample], rng: torch.Generator) -> None:
        """Moves a finished cohort to the buffer and starts the next from ``samples``'
        targets."""
        if not self.finished(self.cohort):
            return
        self.buffer.add(self.images(self.cohort).to(torch.uint8), self._cpu_targets(self.cohort))
        self.cohort = self.start(self.targets_of(samples), rng)

    # ------------------------------------------------------------------------------ cohorts
    def start(self, targets: Targets, rng: torch.Generator) -> Cohort:
        """Starts a cohort of images for the given targets, from its starting images
        (``init``).

        Args:
            targets: Their targets, boxes in pixels of ``targets.img_hw``.
            rng: Random source.

        Returns:
            The new cohort, at age 0.
        """
        origin = dict(targets=Targets([b.detach().cpu().clone() for b in targets.boxes],
                                      [lb.detach().cpu().clone() for lb in targets.labels],
                                      [dict(m) for m in targets.metainfo]),
                      start_rng=rng.get_state(), refine_calls=[])
        num = len(targets)
        device = self._device()
        height, width = targets.img_hw
        if self.lowres_steps > 0:
            height, width = (max(8, round(height * self.lowres_scale)),
                             max(8, round(width * self.lowres_scale)))
        start = STARTING_IMAGES[self.init](num, height, width, rng).to(device)
        params = self.parameterization.encode(start).requires_grad_(True)
        return Cohort(params=params, hw=(height, width), optimizer=self._optimizer(params),
                      targets=targets.to(device), origin=origin)

    def refine(self, cohort: Cohort, steps: int, rng: torch.Generator) -> Dict[str, float]:
        """Refines a cohort by ``steps`` optimizer steps (no more than its remaining steps).

        Returns:
            Mean of each logged loss over these steps.

        Raises:
            NonFiniteSynthesisError: If a step's loss or gradient is not finite; that step
                leaves the pixels as they were. The cohort should then be started again.
        """
        cohort.origin['refine_calls'].append((rng.get_state(), steps))
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
            loss, log = self.loss(self.pixels(cohort), cohort.targets, rng)
            if not torch.isfinite(loss):
                raise NonFiniteSynthesisError(
                    f'non-finite inversion loss at step {cohort.age} of a cohort '
                    f'({describe_parts(log)})')
            (grad, ) = torch.autograd.grad(loss, [cohort.params])
            if not torch.isfinite(grad).all():
                raise NonFiniteSynthesisError(
                    f'non-finite gradient of the inversion loss at step {cohort.age} of a '
                    f'cohort ({describe_parts(log)})')
            cohort.params.grad = grad
            cohort.optimizer.step()
            self.parameterization.project_(cohort.params)
            cohort.age += 1
            done += 1
            for key, value in log.items():
                sums[key] = sums.get(key, 0.) + value
            fp = self.fp_sampling
            if fp and cohort.age >= fp['start'] and \
                    (cohort.age - fp['start']) % fp['interval'] == 0:
                self.sample_false_positives(cohort)
        cohort.log = {key: value / max(done, 1) for key, value in sums.items()}
        return cohort.log

    def pixels(self, cohort: Cohort) -> Tensor:
        """The cohort's images, (B, 3, h, w) in [0, 1], loader channel order (BGR), at the size
        they are optimized at; differentiable with respect to ``cohort.params``."""
        return self.parameterization.decode(cohort.params, cohort.hw)

    def finished(self, cohort: Cohort) -> bool:
        """Whether the cohort has had all its refinement steps."""
        return cohort.age >= self.total_steps

    @torch.no_grad()
    def images(self, cohort: Cohort) -> Tensor:
        """The cohort's images in loader pixel space: (B, 3, H, W) float, values 0-255 rounded
        to integers (as a real image would be)."""
        return (self._full(self.pixels(cohort), cohort.full_hw) * 255).round()

    @torch.no_grad()
    def sample_false_positives(self, cohort: Cohort) -> None:
        """Adds confident teacher detections that overlap no target as new targets (DIODE).

        A detection is added if its (teacher-weighted, fused) score is at least ``score_thr``,
        its IoU with every target is below ``iou_thr``, its area is within ``area_range`` (as a
        share of the image area) and the image has fewer than ``max_boxes`` targets.
        """
        fp = self.fp_sampling
        pixels = self._full(self.pixels(cohort), cohort.full_hw) * 255
        per_teacher = [predict_images(teacher, pixels, cohort.targets.metainfo)
                       for teacher in self.teachers]
        boxes, labels = cohort.targets.boxes, cohort.targets.labels
        image_area = cohort.full_hw[0] * cohort.full_hw[1]
        for i in range(len(boxes)):
            dets = weighted_box_fusion([p[i] for p in per_teacher], self.teacher_weights,
                                       fp['score_thr'], iou_thr=0.55)
            for box, label in zip(dets.bboxes, dets.labels):
                if len(boxes[i]) >= fp['max_boxes']:
                    break
                area = float((box[2] - box[0]) * (box[3] - box[1])) / image_area
                if not fp['area_range'][0] <= area <= fp['area_range'][1]:
                    continue
                if len(boxes[i]) and bbox_overlaps(box[None], boxes[i]).max() >= fp['iou_thr']:
                    continue
                boxes[i] = torch.cat([boxes[i], box[None].float()])
                labels[i] = torch.cat([labels[i], label[None].long()])

    # -------------------------------------------------------------------------------- state
    def state_dict(self) -> dict:
        """The buffer (uint8 images with their targets) and the cohort in progress as what
        recomputes it (its ``origin``: targets and random states), not its pixels."""
        return dict(buffer=self.buffer.state_dict(),
                    cohort=None if self.cohort is None else dict(
                        self.cohort.origin, targets=_targets_state(self.cohort.origin['targets']),
                        refine_calls=list(self.cohort.origin['refine_calls'])))

    def load_state_dict(self, state: dict) -> None:
        """Restores the buffer and recomputes the cohort in progress by replaying its refine
        calls, each from its own saved random state (the caller's random stream is not
        touched). Warm-up is not repeated."""
        self.buffer.load_state_dict(state['buffer'])
        self.warmed_up = True
        self.cohort = None
        saved = state['cohort']
        if saved is not None:
            self.cohort = self.start(Targets(**saved['targets']),
                                     torch.Generator().set_state(saved['start_rng']))
            for rng_state, steps in saved['refine_calls']:
                self.refine(self.cohort, steps, torch.Generator().set_state(rng_state))

    def describe_state(self) -> str:
        return (f'{len(self.buffer)} in the buffer, cohort at step '
                f'{self.cohort.age if self.cohort else 0}')

    # ------------------------------------------------------------------------------ helpers
    @staticmethod
    def _cpu_targets(cohort: Cohort) -> Targets:
        targets = cohort.targets
        return Targets([b.cpu() for b in targets.boxes], [lb.cpu() for lb in targets.labels],
                       targets.metainfo)

    def _upsample(self, cohort: Cohort) -> None:
        with torch.no_grad():
            full = self._full(self.pixels(cohort), cohort.full_hw).clamp(0, 1)
        cohort.params = self.parameterization.encode(full).requires_grad_(True)
        cohort.hw = tuple(cohort.full_hw)
        cohort.optimizer = self._optimizer(cohort.params)

    def _full(self, pixels: Tensor, full_hw: Tuple[int, int]) -> Tensor:
        """The images (B, 3, h, w) in [0, 1] at full resolution (B, 3, H, W), upsampled with
        ``upsample``; values stay in [0, 1]."""
        if tuple(pixels.shape[-2:]) == tuple(full_hw):
            return pixels
        order = UPSAMPLING_MODES[self.upsample]
        if order is None:
            return F.interpolate(pixels, size=full_hw, mode='bilinear', align_corners=False)
        return lanczos_resize(pixels, full_hw, order).clamp(0, 1)

    def _optimizer(self, params: Tensor) -> torch.optim.Optimizer:
        return torch.optim.Adam([params], lr=self.lr, betas=self.betas)


def _targets_state(targets: Targets) -> dict:
    """Targets as plain containers, for checkpoints."""
    return dict(boxes=list(targets.boxes), labels=list(targets.labels),
                metainfo=list(targets.metainfo))
