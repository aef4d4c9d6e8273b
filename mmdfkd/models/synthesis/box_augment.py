"""Differentiable image augmentations that move target boxes with the image (DIODE)."""
from typing import List, Tuple

import torch
from torch import Tensor


def augment_with_boxes(images: Tensor,
                       boxes: List[Tensor],
                       rng: torch.Generator,
                       jitter: int = 0,
                       flip: bool = False,
                       brightness: float = 0.,
                       contrast: float = 0.,
                       min_visible: float = 0.5) -> Tuple[Tensor, List[Tensor], List[Tensor]]:
    """Randomly rolls, flips and re-lights each image, and moves its boxes to match.

    Every operation is differentiable in ``images``, so the inverted pixels receive gradients
    through the augmentation.

    - Roll: the image is shifted circularly by (dy, dx), each uniform in [-jitter, jitter];
      boxes move by the same shift and are clipped to the image. Content pushed over an edge
      comes back at the other side, so a box that keeps less than ``min_visible`` of its area
      after clipping is dropped (its index is left out of the returned ``keep``).
    - Flip: with probability 0.5 the image is mirrored left-right, and boxes with it.
    - Brightness and contrast: ``x -> (x - m) * (1 + c) + m + b`` with m the image mean,
      ``c ~ N(0, contrast)`` and ``b ~ N(0, brightness)``; boxes are unchanged.

    Args:
        images: (N, C, H, W) images in [0, 1].
        boxes: Per image, (K_i, 4) boxes (x1, y1, x2, y2) in pixels.
        rng: Random source (on the CPU), so each rank and step can be seeded.
        jitter: Largest roll in pixels. Defaults to 0 (no roll).
        flip: Whether to flip half of the images. Defaults to False.
        brightness: Std of the additive brightness change. Defaults to 0.
        contrast: Std of the relative contrast change. Defaults to 0.
        min_visible: Smallest kept share of a box's area after a roll. Defaults to 0.5.

    Returns:
        ``(images, boxes, keep)``: the augmented images (N, C, H, W), per image the moved
        boxes (K'_i, 4) and the indices (K'_i,) of the input boxes they come from.
    """
    num, _, height, width = images.shape
    out_images, out_boxes, out_keep = [], [], []
    for i in range(num):
        image, box = images[i], boxes[i].float()
        keep = torch.arange(len(box), device=box.device)
        if jitter > 0:
            dy, dx = (torch.randint(-jitter, jitter + 1, (2, ), generator=rng)).tolist()
            image = torch.roll(image, shifts=(dy, dx), dims=(1, 2))
            moved = box + box.new_tensor([dx, dy, dx, dy])
            clipped = torch.stack([moved[:, 0].clamp(0, width), moved[:, 1].clamp(0, height),
                                   moved[:, 2].clamp(0, width), moved[:, 3].clamp(0, height)],
                                  dim=1)
            area = (box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1])
            kept_area = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
            visible = kept_area >= min_visible * area
            box, keep = clipped[visible], keep[visible]
        if flip and torch.rand((), generator=rng) < 0.5:
            image = image.flip(-1)
            box = torch.stack([width - box[:, 2], box[:, 1], width - box[:, 0], box[:, 3]],
                              dim=1)
        if contrast > 0 or brightness > 0:
            c = torch.randn((), generator=rng).item() * contrast
            b = torch.randn((), generator=rng).item() * brightness
            mean = image.mean()
            image = (image - mean) * (1 + c) + mean + b
        out_images.append(image)
        out_boxes.append(box)
        out_keep.append(keep)
    return torch.stack(out_images), out_boxes, out_keep
