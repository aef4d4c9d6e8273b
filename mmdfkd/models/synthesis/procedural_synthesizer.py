"""Procedural images with natural-image statistics, made without the teacher: the cheapest
transfer set for data-free distillation."""
from typing import Sequence

import torch
from mmdet.structures import DetDataSample

from mmdfkd.registry import SYNTHESIZERS
from .base import Retry, SyntheticBatch, Synthesizer, Targets, run_once
from .starting_images import STARTING_IMAGES


@SYNTHESIZERS.register_module()
class ProceduralSynthesizer(Synthesizer):
    """Draws procedural images (:mod:`.starting_images`, e.g. dead leaves) and no teacher
    pass: the student learns the teacher's outputs on images whose statistics (occlusion edges,
    flat regions, a 1/f spectrum) resemble natural images', as knowledge distillation on
    out-of-domain images does (Baradad et al. 2021 train from such images alone).

    Every batch is new (its images come from the random stream), so training never sees an
    image twice; nothing is stored, and a resume continues from the hook's random stream. The
    images carry no targets: what they contain is whatever the teacher detects in them, so a
    distiller trains on them through the teacher's outputs (its dense terms and
    ``PseudoBoxLoss`` with ``keep_gt=False``), not through ground truth.

    Args:
        teachers, teacher_weights, student, dataset: See :class:`Synthesizer`; the teachers
            are not run here.
        init: Which procedural images (a key of ``STARTING_IMAGES``). Defaults to
            ``'dead_leaves'``.

    Raises:
        ValueError: If ``init`` is unknown.
    """

    def __init__(self,
                 teachers,
                 teacher_weights: Sequence[float],
                 student=None,
                 dataset=None,
                 init: str = 'dead_leaves') -> None:
        if init not in STARTING_IMAGES:
            raise ValueError(f'init must be one of {sorted(STARTING_IMAGES)}, got {init!r}.')
        # No InversionLoss: nothing is optimized, so the base class's loss is not built.
        self.teachers = list(teachers)
        self.teacher_weights = list(teacher_weights)
        self.dataset = dataset
        self.init = init

    def next_batch(self, samples: Sequence[DetDataSample], rng: torch.Generator,
                   retry: Retry = run_once) -> SyntheticBatch:
        return self._draw([dict(s.metainfo) for s in samples], rng)

    def synthesize(self, targets: Targets, rng: torch.Generator) -> SyntheticBatch:
        """Procedural images of the targets' sizes; the targets' boxes are not drawn into them
        and are not returned."""
        return self._draw(targets.metainfo, rng)

    def _draw(self, metainfo: Sequence[dict], rng: torch.Generator) -> SyntheticBatch:
        height, width = metainfo[0]['img_shape'][:2]
        images = STARTING_IMAGES[self.init](len(metainfo), height, width, rng)
        images = (images * 255).round().to(torch.uint8)
        empty = Targets([torch.zeros(0, 4) for _ in metainfo],
                        [torch.zeros(0, dtype=torch.long) for _ in metainfo],
                        [dict(m) for m in metainfo])
        return SyntheticBatch(list(images), empty)

    def state_dict(self) -> dict:
        """Nothing: every batch comes from the hook's random stream, which it saves."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Nothing to restore (see :meth:`state_dict`)."""

    def describe_state(self) -> str:
        return f'procedural images ({self.init}), nothing stored'
