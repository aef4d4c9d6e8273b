"""Image priors of model inversion: smoothness (total variation) and small norm."""
from typing import Tuple

from torch import Tensor


def _neighbour_differences(images: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Differences to the right, lower, lower-right and lower-left neighbour of each pixel."""
    return (images[..., :, 1:] - images[..., :, :-1], images[..., 1:, :] - images[..., :-1, :],
            images[..., 1:, 1:] - images[..., :-1, :-1],
            images[..., 1:, :-1] - images[..., :-1, 1:])


def total_variation_l1(images: Tensor) -> Tensor:
    """Sum over the four neighbour directions (as in DeepInversion) of the mean absolute
    difference, images (N, C, H, W)."""
    return sum(d.abs().mean() for d in _neighbour_differences(images))


def total_variation_l2(images: Tensor) -> Tensor:
    """Sum over the four neighbour directions of the difference norms, divided by N."""
    return sum(d.norm() for d in _neighbour_differences(images)) / images.shape[0]


def l2_prior(images: Tensor) -> Tensor:
    """Mean L2 norm of the images, centred at 0.5 (images in [0, 1]), (N, C, H, W)."""
    return (images - 0.5).flatten(1).norm(dim=1).mean()
