"""The competition term of adaptive DeepInversion, for detectors: how much the student
disagrees with its teachers on an image."""
import math
from typing import Sequence

from torch import Tensor, nn

from ..utils.dense_heads import dense_pair_problems, flatten_levels
from ..utils.detector_runs import record_outputs
from ..utils.normalization import normalize_like
from ..utils.recorder import resolve_submodule


def bernoulli_kl(p: Tensor, q: Tensor) -> Tensor:
    """Elementwise KL divergence between Bernoulli distributions with means p and q."""
    return p * (p / q).log() + (1 - p) * ((1 - p) / (1 - q)).log()


class StudentTeacherDisagreement:
    """Jensen-Shannon divergence between the student's and the teachers' class probabilities,
    location by location, differentiable in the images through all models.

    This is the competition term of adaptive DeepInversion adapted to detection: image
    synthesis rewards images on which the student still disagrees with its teachers
    (``InversionLoss(adi_weight=...)``). Heads must score classes with sigmoids (RetinaNet,
    ATSS, ...): each class probability is a Bernoulli distribution, clamped to [0.01, 0.99] as
    in DeepInversion; the divergence is averaged over locations and classes and over teachers
    by their weights.

    Args:
        student: The student detector.
        teachers: The teacher detectors.
        teacher_weights: One weight per teacher.
        head: Name of the dense head in the student and the teachers. Defaults to
            ``'bbox_head'``.

    Raises:
        ValueError: If the student's head does not score with sigmoids, or a teacher's head
            does not share its anchors, strides and classes.
    """

    def __init__(self, student: nn.Module, teachers: Sequence[nn.Module],
                 teacher_weights: Sequence[float], head: str = 'bbox_head') -> None:
        student_head = resolve_submodule(student, head)
        if not getattr(student_head, 'use_sigmoid_cls', False):
            raise ValueError(f'The competition term needs a sigmoid-scored {head!r} '
                             '(use_sigmoid=True in loss_cls); set adi_weight=0 for this student.')
        for teacher in teachers:
            problems = dense_pair_problems(student_head, resolve_submodule(teacher, head))
            if problems:
                raise ValueError('The competition term (adi_weight) needs heads that share '
                                 f'locations: {"; ".join(problems)}. Set adi_weight=0 for this '
                                 'pair.')
        self.student = student
        self.teachers = list(teachers)
        self.teacher_weights = list(teacher_weights)
        self.head = head

    def __call__(self, images: Tensor) -> Tensor:
        """The disagreement on images.

        Args:
            images: Images in the data loader's pixel space (BGR, 0-255), (N, 3, H, W).

        Returns:
            Scalar divergence divided by ln 2, its largest value: in [0, 1].

        Raises:
            ValueError: If the data preprocessors pad the images to different sizes.
        """
        student_probs = self._probabilities(self.student, images)
        total = 0.
        for teacher, weight in zip(self.teachers, self.teacher_weights):
            teacher_probs = self._probabilities(teacher, images)
            if teacher_probs.shape != student_probs.shape:
                raise ValueError(
                    f'The teacher and student heads give {tuple(teacher_probs.shape)} and '
                    f'{tuple(student_probs.shape)} scores: their data preprocessors pad to '
                    'different sizes; use images whose sides divide both pad_size_divisors.')
            mean = (student_probs + teacher_probs) / 2
            divergence = (bernoulli_kl(student_probs, mean) +
                          bernoulli_kl(teacher_probs, mean)) / 2
            total = total + weight * divergence.mean()
        return total / (sum(self.teacher_weights) * math.log(2))

    def _probabilities(self, detector: nn.Module, images: Tensor) -> Tensor:
        """Per location and class, the detector's clamped sigmoid score,
        (N * locations, classes)."""
        inputs = normalize_like(images, detector.data_preprocessor)
        cls_scores = record_outputs(detector, [self.head], inputs)[self.head][0]
        channels = resolve_submodule(detector, self.head).cls_out_channels
        return flatten_levels(cls_scores, channels).sigmoid().clamp(0.01, 0.99)
