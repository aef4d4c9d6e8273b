"""Images an inversion starts from: noise, or procedural images with natural-image statistics.

Inversion refines its starting images for a few dozen steps; what it cannot move far in that
time stays as it started. Starting from pixel noise leaves noise in the images; procedural
images whose statistics resemble natural images' give the refinement occlusion edges, flat
regions and a 1/f spectrum to start from (Baradad et al., "Learning to See by Looking at
Noise", NeurIPS 2021: of their procedural models, dead leaves and spectrum-matched noise teach
the most natural-image-like features).

All functions return (num, 3, height, width) float images in [0, 1] on the CPU and draw only
from the given ``rng``, so a starting image is reproduced from the random state it was drawn
from.
"""
import math
from typing import Callable, Dict

import torch
import torch.nn.functional as F
from torch import Tensor


def smooth_noise(num: int, height: int, width: int, rng: torch.Generator) -> Tensor:
    """Uniform noise on a grid 16 times coarser, upsampled bicubically, plus a little pixel
    noise."""
    coarse = torch.rand(num, 3, max(2, height // 16), max(2, width // 16), generator=rng)
    pixels = F.interpolate(coarse, size=(height, width), mode='bicubic', align_corners=False)
    return (pixels + 0.05 * torch.randn(pixels.shape, generator=rng)).clamp(0, 1)


def pixel_noise(num: int, height: int, width: int, rng: torch.Generator) -> Tensor:
    """Gaussian pixel noise around mid-grey (standard deviation 0.2)."""
    return (0.5 + 0.2 * torch.randn(num, 3, height, width, generator=rng)).clamp(0, 1)


def dead_leaves(num: int, height: int, width: int, rng: torch.Generator,
                leaves: int = 256, min_radius: float = 0.03,
                max_radius: float = 0.6) -> Tensor:
    """The dead-leaves model: discs of random colour dropped on each other, the later ones
    occluding the earlier (Lee, Mumford and Huang 2001; Baradad et al. 2021's "Dead leaves -
    mixed" without textures).

    Radii follow the scale-invariant density p(r) ~ r^-3 between ``min_radius`` and
    ``max_radius`` (shares of the image's longer side), which gives the image a power spectrum
    close to natural images' 1/f^2; centres are uniform, colours uniform in RGB. Pixels no disc
    covers keep a random background colour.

    Args:
        num, height, width: Output shape (num, 3, height, width).
        rng: Random source.
        leaves: Discs per image.
        min_radius, max_radius: Radius range, as shares of ``max(height, width)``.
    """
    side = max(height, width)
    # Inverse-CDF sampling of p(r) ~ r^-3 on [a, b]: r = (a^-2 - u (a^-2 - b^-2))^(-1/2).
    a, b = min_radius * side, max_radius * side
    u = torch.rand(num, leaves, generator=rng)
    radius = (a ** -2 - u * (a ** -2 - b ** -2)) ** -0.5
    cy = torch.rand(num, leaves, generator=rng) * height
    cx = torch.rand(num, leaves, generator=rng) * width
    colors = torch.rand(num, leaves + 1, 3, generator=rng)  # index `leaves`: the background
    ys = torch.arange(height, dtype=torch.float32).view(1, height, 1) + 0.5
    xs = torch.arange(width, dtype=torch.float32).view(1, 1, width) + 0.5
    # The index of the disc seen at each pixel: the last one dropped there (the background's,
    # `leaves`, where none is).
    top = torch.full((num, height, width), leaves, dtype=torch.long)
    for k in range(leaves):
        inside = ((ys - cy[:, k, None, None]) ** 2 + (xs - cx[:, k, None, None]) ** 2
                  <= radius[:, k, None, None] ** 2)
        top = torch.where(inside, k, top)
    pixels = torch.gather(colors, 1, top.view(num, -1, 1).expand(-1, -1, 3))
    return pixels.view(num, height, width, 3).permute(0, 3, 1, 2).contiguous()


def spectral_noise(num: int, height: int, width: int, rng: torch.Generator,
                   slope_range=(1.0, 3.0)) -> Tensor:
    """Colour noise with a random power-law spectrum: amplitude ~ 1/f^(slope/2), the slope
    drawn per image from ``slope_range`` (natural images: power slope about 2), channels mixed
    by a random colour matrix so colours are correlated as in natural images (Baradad et al.
    2021's "Spectrum" model).

    Args:
        num, height, width: Output shape (num, 3, height, width).
        rng: Random source.
        slope_range: Range of the power spectrum's slope.
    """
    fy = torch.fft.fftfreq(height).view(height, 1)
    fx = torch.fft.rfftfreq(width).view(1, -1)
    freq = torch.sqrt(fy ** 2 + fx ** 2).clamp(min=1.0 / max(height, width))
    slope = slope_range[0] + (slope_range[1] - slope_range[0]) * torch.rand(num, 1, 1, 1,
                                                                            generator=rng)
    amplitude = freq.pow(-slope / 2)  # (num, 1, H, W//2+1)
    phase = torch.rand(num, 3, height, width // 2 + 1, generator=rng) * 2 * math.pi
    spectrum = torch.polar(amplitude.expand(-1, 3, -1, -1), phase)
    noise = torch.fft.irfft2(spectrum, s=(height, width))
    noise = noise / noise.flatten(1).std(dim=1).view(num, 1, 1, 1)
    mixing = torch.randn(num, 3, 3, generator=rng) / math.sqrt(3)
    mean = torch.rand(num, 3, 1, 1, generator=rng)
    pixels = mean + 0.2 * torch.einsum('nij,njhw->nihw', mixing, noise)
    return pixels.clamp(0, 1)


STARTING_IMAGES: Dict[str, Callable[..., Tensor]] = dict(
    smooth=smooth_noise, noise=pixel_noise, dead_leaves=dead_leaves, spectral=spectral_noise)
