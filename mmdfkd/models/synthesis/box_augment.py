"""Differentiable image augmentations that move target boxes with the image (DIODE)."""
import math
from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor


def augment_with_boxes(images: Tensor,
                       boxes: List[Tensor],
                       rng: torch.Generator,
                       jitter: int = 0,
                       flip: bool = False,
                       brightness: float = 0.,
                       contrast: float = 0.,
                       zoom: float = 0.,
                       color: float = 0.,
                       min_visible: float = 0.5) -> Tuple[Tensor, List[Tensor], List[Tensor]]:
    """Randomly zooms, rolls, flips and re-lights each image, and moves its boxes to match.

    Every operation is differentiable in ``images``, so the inverted pixels receive gradients
    through the augmentation.

    - Zoom: the image is resized (bilinear) by a factor ``z`` log-uniform in
      [1 / (1 + zoom), 1 + zoom], then cropped (z > 1) or padded with its mean colour (z < 1)
      back to H x W at a random offset; boxes are scaled, shifted and clipped, and a box that
      keeps less than ``min_visible`` of its scaled area is dropped. The teachers must find
      the targets at several scales, as under Plug-In Inversion's random resized crops.
    - Roll: the image is shifted circularly by (dy, dx), each uniform in [-jitter, jitter];
      boxes move by the same shift and are clipped to the image. Content pushed over an edge
      comes back at the other side, so a box that keeps less than ``min_visible`` of its area
      after clipping is dropped (its index is left out of the returned ``keep``).
    - Flip: with probability 0.5 the image is mirrored left-right, and boxes with it.
    - Brightness and contrast: ``x -> (x - m) * (1 + c) + m + b`` with m the image mean,
      ``c ~ N(0, contrast)`` and ``b ~ N(0, brightness)``; boxes are unchanged.
    - Colour: each channel ``x_k -> x_k * (1 + g_k) + o_k`` with ``g_k, o_k ~ N(0, color)``
      (Plug-In Inversion's colour shift): an image can only keep its targets through shapes
      that survive a change of colour balance, not through one exact colour pattern.

    Args:
        images: (N, C, H, W) images in [0, 1].
        boxes: Per image, (K_i, 4) boxes (x1, y1, x2, y2) in pixels.
        rng: Random source (on the CPU), so each rank and step can be seeded.
        jitter: Largest roll in pixels. Defaults to 0 (no roll).
        flip: Whether to flip half of the images. Defaults to False.
        brightness: Std of the additive brightness change. Defaults to 0.
        contrast: Std of the relative contrast change. Defaults to 0.
        zoom: Largest relative zoom, 0 for none. Defaults to 0.
        color: Std of the per-channel gain and offset. Defaults to 0.
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
        if zoom > 0:
            image, box, visible = _zoom(image, box, rng, zoom, min_visible)
            keep = keep[visible]
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
        if color > 0:
            gain, offset = (torch.randn(2, image.shape[0], 1, 1, generator=rng) * color).to(
                image)
            image = image * (1 + gain) + offset
        out_images.append(image)
        out_boxes.append(box)
        out_keep.append(keep)
    return torch.stack(out_images), out_boxes, out_keep


def _zoom(image: Tensor, box: Tensor, rng: torch.Generator, zoom: float,
          min_visible: float) -> Tuple[Tensor, Tensor, Tensor]:
    """One image (C, H, W) resized by a random factor and cropped or padded back to H x W at a
    random offset; its boxes moved to match and clipped. Returns the image, the kept boxes and
    the mask of kept boxes."""
    _, height, width = image.shape
    factor = math.exp((2 * torch.rand((), generator=rng).item() - 1) * math.log1p(zoom))
    new_h, new_w = max(1, round(height * factor)), max(1, round(width * factor))
    resized = F.interpolate(image[None], size=(new_h, new_w), mode='bilinear',
                            align_corners=False)[0]
    # Offset of the resized image's top-left corner on the H x W canvas: negative when it is
    # larger (a crop), positive when smaller (padding).
    oy = int(torch.randint(min(0, height - new_h), max(0, height - new_h) + 1, (),
                           generator=rng))
    ox = int(torch.randint(min(0, width - new_w), max(0, width - new_w) + 1, (),
                           generator=rng))
    canvas = image.mean(dim=(1, 2), keepdim=True).expand(-1, height, width).clone()
    top, left = max(0, oy), max(0, ox)
    bottom, right = min(height, oy + new_h), min(width, ox + new_w)
    canvas[:, top:bottom, left:right] = resized[:, top - oy:bottom - oy, left - ox:right - ox]
    scale = box.new_tensor([new_w / width, new_h / height, new_w / width, new_h / height])
    moved = box * scale + box.new_tensor([ox, oy, ox, oy])
    clipped = torch.stack([moved[:, 0].clamp(0, width), moved[:, 1].clamp(0, height),
                           moved[:, 2].clamp(0, width), moved[:, 3].clamp(0, height)], dim=1)
    area = (moved[:, 2] - moved[:, 0]) * (moved[:, 3] - moved[:, 1])
    kept_area = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    visible = kept_area >= min_visible * area
    return canvas, clipped[visible], visible
