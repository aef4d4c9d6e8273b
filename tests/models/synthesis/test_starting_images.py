"""The images an inversion starts from: shapes and range, reproducibility from the random state,
and the statistics each model is defined by (the dead-leaves radius law and occlusion, the power
spectrum slope of spectral noise)."""
import math

import pytest
import torch

from mmdfkd.models.synthesis import InversionSynthesizer
from mmdfkd.models.synthesis.starting_images import (STARTING_IMAGES, dead_leaves,
                                                      spectral_noise)
from synthesis_fixtures import targets, teacher


def _rng(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize('name', sorted(STARTING_IMAGES))
def test_shape_range_and_reproducible_from_the_random_state(name):
    make = STARTING_IMAGES[name]
    rng = _rng(3)
    state = rng.get_state()
    images = make(2, 24, 40, rng)
    assert images.shape == (2, 3, 24, 40) and images.dtype == torch.float32
    assert images.min() >= 0 and images.max() <= 1
    assert images.std() > 0.02  # not a constant image
    again = make(2, 24, 40, torch.Generator().set_state(state))
    assert torch.equal(images, again)
    assert not torch.equal(images, make(2, 24, 40, _rng(4)))


def _power_slope(images: torch.Tensor) -> float:
    """Least-squares slope of log radially-averaged power against log frequency (per image,
    grey, mean removed), averaged over the images, on frequencies 2 to size/4 cycles."""
    grey = images.mean(dim=1)
    grey = grey - grey.mean(dim=(1, 2), keepdim=True)
    power = torch.fft.fft2(grey).abs().pow(2).mean(dim=0)
    size = grey.shape[-1]
    freq = torch.fft.fftfreq(size) * size
    radius = torch.sqrt(freq.view(-1, 1) ** 2 + freq.view(1, -1) ** 2).round().long()
    xs, ys = [], []
    for r in range(2, size // 4):
        xs.append(math.log(r))
        ys.append(math.log(power[radius == r].mean().item()))
    x, y = torch.tensor(xs), torch.tensor(ys)
    x = x - x.mean()
    return float((x * (y - y.mean())).sum() / (x * x).sum())


def test_spectral_noise_has_the_drawn_power_law():
    # Power ~ 1/f^slope: with the slope fixed at 2 (natural images), the fitted slope is -2.
    # Clamping to [0, 1] bends it a little, so mid-grey images with little contrast are used.
    images = spectral_noise(16, 128, 128, _rng(), slope_range=(2.0, 2.0))
    assert _power_slope(images) == pytest.approx(-2.0, abs=0.15)
    steep = spectral_noise(16, 128, 128, _rng(), slope_range=(3.0, 3.0))
    assert _power_slope(steep) == pytest.approx(-3.0, abs=0.2)


def test_dead_leaves_radius_law_and_occlusion():
    # One leaf covering the whole image (min = max radius, far larger than it) paints it in
    # one colour; with none covering, the background colour is seen.
    whole = dead_leaves(1, 16, 16, _rng(), leaves=1, min_radius=3.0, max_radius=3.0)
    assert whole.flatten(2).std(dim=2).max() == 0
    # Later leaves occlude earlier ones: two leaves that each cover everything leave the colour
    # of the second, which is the colour table's second row.
    rng = _rng(5)
    state = rng.get_state()
    two = dead_leaves(1, 8, 8, rng, leaves=2, min_radius=3.0, max_radius=3.0)
    replay = torch.Generator().set_state(state)
    for _ in range(3):  # radii, centres y, centres x
        torch.rand(1, 2, generator=replay)
    colors = torch.rand(1, 3, 3, generator=replay)
    assert torch.allclose(two[0, :, 0, 0], colors[0, 1])
    # Scale invariance: the radius density r^-3 on [a, b] puts the median radius at
    # (a^-2 - (a^-2 - b^-2) / 2)^(-1/2); the share of the image a lone leaf of each drawn
    # radius covers is measured through single-leaf images.
    a, b, side = 0.05, 0.5, 64
    covered = dead_leaves(400, side, side, _rng(7), leaves=1, min_radius=a, max_radius=b)
    background_share = torch.stack([(img == img[:, :1, :1]).all(dim=0).float().mean()
                                    for img in covered])  # pixels with the corner's colour
    median_radius = (a ** -2 - (a ** -2 - b ** -2) / 2) ** -0.5 * side
    # A disc fully inside the image covers pi r^2 pixels; the median disc covers less than a
    # tenth of the image, so most single-leaf images are mostly background.
    assert math.pi * median_radius ** 2 / side ** 2 < 0.1
    assert background_share.median() > 0.85


def test_a_natural_image_statistics_start_is_refined_from_the_low_resolution_size():
    synthesizer = InversionSynthesizer([teacher()], [1.0], total_steps=4, lowres_steps=2,
                                       lowres_scale=0.5, init='dead_leaves')
    cohort = synthesizer.start(targets(), _rng())
    assert synthesizer.pixels(cohort).shape == (2, 3, 64, 64)
    # Piecewise constant (occluding discs): most horizontal neighbours have the same colour.
    pixels = synthesizer.pixels(cohort).detach()
    same = (pixels[..., 1:] == pixels[..., :-1]).all(dim=1).float().mean()
    assert same > 0.7
    synthesizer.refine(cohort, 4, _rng())
    assert synthesizer.pixels(cohort).shape == (2, 3, 128, 128)
