"""Random box targets for the images synthesized from a teacher detector.

DIODE (Chawla et al., 2021) synthesizes each image for one random target box ("onebox"): width
and height uniform in [0.2, 0.8] of the image side, class uniform. :class:`BoxTargetSampler`
generalizes it to several boxes per image, a size drawn independently of the aspect ratio, an
overlap limit between the boxes of one image and weighted classes.
"""
import math
import numbers
from collections.abc import Sequence
from typing import Optional, Union

import numpy as np
from mmdet.registry import TASK_UTILS

# Shortest box side, in pixels, a sampler may draw. A smaller box covers a pixel or two: there
# is no object for the teacher to be steered towards, and mmdet's pipelines drop such boxes.
MIN_BOX_SIDE = 2.0


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_range(name: str, value, high: float) -> tuple[float, float]:
    """Checks that ``value`` is a ``(min, max)`` pair with ``0 < min <= max <= high``.

    Args:
        name (str): Argument name, for the error message.
        value: The argument as given.
        high (float): Largest allowed ``max``.

    Returns:
        tuple[float, float]: The pair as floats.
    """
    if (not isinstance(value, Sequence) or len(value) != 2
            or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value)):
        raise ValueError(f'BoxTargetSampler: {name} must be a (min, max) pair of numbers, '
                         f'got {value!r}.')
    lo, hi = float(value[0]), float(value[1])
    if not 0 < lo <= hi <= high:
        raise ValueError(f'BoxTargetSampler: {name} must satisfy 0 < min <= max <= {high}, '
                         f'got {value!r}.')
    return lo, hi


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one box with each of several boxes (x1, y1, x2, y2, continuous coordinates).

    Args:
        box (np.ndarray): Shape (4,).
        boxes (np.ndarray): Shape (K, 4).

    Returns:
        np.ndarray: Shape (K,), values in [0, 1]; boxes that only touch have IoU 0.
    """
    iw = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    ih = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = iw * ih
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / (area + areas - inter)


@TASK_UTILS.register_module()
class BoxTargetSampler:
    """Samples the target boxes and classes of one synthetic image.

    For each box, its size ``s = sqrt(w * h)`` is drawn uniformly from ``size_range`` times the
    shorter image side and its aspect ratio ``a = w / h`` log-uniformly from ``aspect_range``,
    giving ``w = s * sqrt(a)`` and ``h = s / sqrt(a)``; a side longer than the image is clipped
    to the image (so such a box is smaller, and its aspect nearer 1, than drawn). The box is then
    placed uniformly so that it lies wholly inside the image.

    A box overlapping an earlier box of the same image by an IoU above ``max_overlap`` is drawn
    again, up to ``max_tries`` times; if it still overlaps, the image is taken as full and keeps
    the boxes it has. The first box is always kept, so every image has at least one box.
    Classes are drawn independently per kept box.

    The defaults give DIODE's "onebox" targets, except that DIODE draws w and h independently.
    The image must be large enough for the smallest box to be ``MIN_BOX_SIDE`` (2) pixels on
    each side (:meth:`check_image_size`, run by :meth:`sample`).

    Args:
        num_classes (int): Number of classes; labels are in ``[0, num_classes)``.
        boxes_per_image (int | tuple[int, int]): Number of boxes drawn per image, or an
            inclusive ``(min, max)`` range drawn uniformly. Defaults to 1.
        size_range (tuple[float, float]): Range of ``sqrt(w * h)`` as a fraction of the shorter
            image side, within (0, 1]. Defaults to (0.2, 0.8).
        aspect_range (tuple[float, float]): Range of ``w / h``, positive. Defaults to
            (0.5, 2.0).
        class_weights (Sequence[float], optional): One non-negative weight per class, not all
            zero; classes are drawn with probability proportional to them. Defaults to None
            (uniform).
        max_overlap (float): Largest IoU a box may have with an earlier box of the same image,
            in [0, 1]; 1 disables the check. Defaults to 0.5.
        max_tries (int): Draws per box before giving up on it. Defaults to 50.

    Raises:
        ValueError: If an argument is out of its range or of the wrong type.
    """

    def __init__(self,
                 num_classes: int,
                 boxes_per_image: Union[int, tuple[int, int]] = 1,
                 size_range: tuple[float, float] = (0.2, 0.8),
                 aspect_range: tuple[float, float] = (0.5, 2.0),
                 class_weights: Optional[Sequence[float]] = None,
                 max_overlap: float = 0.5,
                 max_tries: int = 50) -> None:
        if not _is_int(num_classes) or num_classes < 1:
            raise ValueError(f'BoxTargetSampler: num_classes must be a positive integer, '
                             f'got {num_classes!r}.')
        self.num_classes = int(num_classes)

        if _is_int(boxes_per_image):
            boxes_per_image = (boxes_per_image, boxes_per_image)
        if (not isinstance(boxes_per_image, Sequence) or len(boxes_per_image) != 2
                or not all(_is_int(n) for n in boxes_per_image)
                or not 1 <= boxes_per_image[0] <= boxes_per_image[1]):
            raise ValueError(f'BoxTargetSampler: boxes_per_image must be a positive integer or '
                             f'an inclusive (min, max) pair of integers with 1 <= min <= max, '
                             f'got {boxes_per_image!r}.')
        self.boxes_per_image = (int(boxes_per_image[0]), int(boxes_per_image[1]))

        self.size_range = _check_range('size_range', size_range, 1.0)
        self.aspect_range = _check_range('aspect_range', aspect_range, math.inf)

        if class_weights is None:
            self.class_probs = np.full(self.num_classes, 1.0 / self.num_classes)
        else:
            weights = np.asarray(class_weights, dtype=np.float64)
            if weights.shape != (self.num_classes,):
                raise ValueError(f'BoxTargetSampler: class_weights must have one weight per '
                                 f'class ({self.num_classes}), got shape {weights.shape}.')
            if not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
                raise ValueError(f'BoxTargetSampler: class_weights must be finite, non-negative '
                                 f'and not all zero, got {list(class_weights)}.')
            self.class_probs = weights / weights.sum()

        if (not isinstance(max_overlap, numbers.Real) or isinstance(max_overlap, bool)
                or not 0 <= max_overlap <= 1):
            raise ValueError(f'BoxTargetSampler: max_overlap must be an IoU in [0, 1], '
                             f'got {max_overlap!r}.')
        self.max_overlap = float(max_overlap)
        if not _is_int(max_tries) or max_tries < 1:
            raise ValueError(f'BoxTargetSampler: max_tries must be a positive integer, '
                             f'got {max_tries!r}.')
        self.max_tries = int(max_tries)

    def smallest_side(self, img_hw: tuple[int, int]) -> float:
        """The shortest box side, in pixels, this sampler can draw in an image of ``img_hw``.

        Args:
            img_hw (tuple[int, int]): Image height and width in pixels.

        Returns:
            float: ``size_range[0] * min(H, W)`` times the shortest side of a unit-size box of
            an aspect ratio in ``aspect_range``.
        """
        unit_side = min(math.sqrt(self.aspect_range[0]), 1 / math.sqrt(self.aspect_range[1]))
        return self.size_range[0] * min(img_hw) * unit_side

    def check_image_size(self, img_hw: tuple[int, int]) -> tuple[int, int]:
        """Checks that boxes drawn for images of ``img_hw`` are at least ``MIN_BOX_SIDE`` px.

        Args:
            img_hw (tuple[int, int]): Image height and width in pixels.

        Returns:
            tuple[int, int]: ``img_hw`` as ints.

        Raises:
            ValueError: If ``img_hw`` is not a pair of positive integers, or the smallest box
                would be under ``MIN_BOX_SIDE`` pixels; the message gives the image size and
                the ``size_range`` that would do.
        """
        if (not isinstance(img_hw, Sequence) or len(img_hw) != 2
                or not all(_is_int(v) and v > 0 for v in img_hw)):
            raise ValueError(f'BoxTargetSampler: img_hw must be a (height, width) pair of '
                             f'positive integers, got {img_hw!r}.')
        smallest = self.smallest_side(img_hw)
        if smallest < MIN_BOX_SIDE:
            least_side = math.ceil(min(img_hw) * MIN_BOX_SIDE / smallest)
            least_size = MIN_BOX_SIDE / smallest * self.size_range[0]
            raise ValueError(
                f'BoxTargetSampler: in {img_hw[0]}x{img_hw[1]} images, size_range '
                f'{self.size_range} and aspect_range {self.aspect_range} give boxes as small as '
                f'{smallest:.2g} px on a side; boxes need at least {MIN_BOX_SIDE:g} px (a smaller '
                'box covers a pixel or two: there is no object for the teacher to be steered '
                f'towards). Use larger images (at least {least_side} px on the shorter side for '
                'this size_range and aspect_range)'
                + (f', or raise size_range[0] to {least_size:.2g} or more'
                   if least_size <= self.size_range[1] else '') + '.')
        return int(img_hw[0]), int(img_hw[1])

    def _draw_box(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
        size = rng.uniform(*self.size_range) * min(height, width)
        aspect = math.exp(rng.uniform(math.log(self.aspect_range[0]),
                                      math.log(self.aspect_range[1])))
        w = min(size * math.sqrt(aspect), width)
        h = min(size / math.sqrt(aspect), height)
        x1 = rng.uniform(0.0, width - w)
        y1 = rng.uniform(0.0, height - h)
        return np.array([x1, y1, x1 + w, y1 + h])

    def sample(self, rng: np.random.Generator,
               img_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Draws the targets of one image.

        Args:
            rng (np.random.Generator): Source of randomness; the result depends only on its
                state and ``img_hw``.
            img_hw (tuple[int, int]): Image height and width in pixels.

        Returns:
            tuple[np.ndarray, np.ndarray]: ``boxes`` of shape (K, 4), float32, ``x1, y1, x2, y2``
            in pixels with ``0 <= x1 < x2 <= W`` and ``0 <= y1 < y2 <= H``, and ``labels`` of
            shape (K,), int64 in ``[0, num_classes)``, with ``1 <= K <= boxes_per_image[1]``.

        Raises:
            ValueError: If ``img_hw`` is not a pair of positive integers, or too small for
                boxes of ``MIN_BOX_SIDE`` px (see :meth:`check_image_size`).
        """
        height, width = self.check_image_size(img_hw)
        count = int(rng.integers(self.boxes_per_image[0], self.boxes_per_image[1] + 1))
        boxes = [self._draw_box(rng, height, width)]
        while len(boxes) < count:
            for _ in range(self.max_tries):
                box = self._draw_box(rng, height, width)
                if box_iou(box, np.stack(boxes)).max() <= self.max_overlap:
                    boxes.append(box)
                    break
            else:
                break
        labels = rng.choice(self.num_classes, size=len(boxes), p=self.class_probs)
        return np.stack(boxes).astype(np.float32), labels.astype(np.int64)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_classes={self.num_classes}, '
                f'boxes_per_image={self.boxes_per_image}, size_range={self.size_range}, '
                f'aspect_range={self.aspect_range}, class_probs={self.class_probs.round(4)}, '
                f'max_overlap={self.max_overlap}, max_tries={self.max_tries})')
