"""Image parameterizations of the inversion: pixels and the decorrelated 1/f spectrum. The
spectrum round-trips images exactly, scales frequencies by 1/f^decay (checked on single
frequencies against the closed form), and an inversion optimized in it starts from its starting
images, refines at both resolutions and keeps its images in range."""
import math

import pytest
import torch

from mmdfkd.models.synthesis import InversionSynthesizer
from mmdfkd.models.synthesis.image_parameterization import (FourierParameterization,
                                                             PixelParameterization)
from mmdfkd.models.synthesis.starting_images import dead_leaves
from synthesis_fixtures import targets, teacher


def test_pixels_are_their_own_parameters_and_are_clamped():
    param = PixelParameterization()
    images = torch.rand(2, 3, 8, 8)
    params = param.encode(images)
    assert torch.equal(param.decode(params, (8, 8)), images) and params is not images
    params += 0.5
    param.project_(params)
    assert params.max() == 1 and params.min() >= 0.5


@pytest.mark.parametrize('hw', [(16, 16), (12, 20), (9, 15)])
def test_the_spectrum_round_trips_images(hw):
    param = FourierParameterization()
    images = 0.05 + 0.9 * torch.rand(2, 3, *hw)
    params = param.encode(images)
    assert params.shape == (2, 3, hw[0], hw[1] // 2 + 1, 2)
    assert torch.allclose(param.decode(params, hw), images, atol=1e-5)
    # Values beyond the margin come back at the margin, where the sigmoid still has a slope.
    assert torch.allclose(param.decode(param.encode(torch.zeros(1, 3, *hw)), hw),
                          torch.full((1, 3, *hw), 0.02), atol=1e-5)


@pytest.mark.parametrize('decay', [0.0, 1.0, 2.0])
def test_frequencies_are_scaled_by_one_over_f_to_the_decay(decay):
    # One coefficient set at horizontal frequency k (cycles per image) renders, before the
    # sigmoid, a cosine of amplitude proportional to scale(k) = (k / size)^-decay. Small
    # amplitudes keep the sigmoid linear (slope 1/4 at mid-grey), so the ratio of two renders'
    # amplitudes is (k1 / k2)^decay.
    size = 32
    param = FourierParameterization(decay=decay)
    base = param.encode(torch.full((1, 3, size, size), 0.5, dtype=torch.float64))
    amplitudes = {}
    for k in (2, 8):
        params = base.clone()
        params[0, :, 0, k, 0] += 1e-6
        image = param.decode(params, (size, size)) - 0.5
        row = image[0, 0, 0]
        expected_shape = torch.cos(
            2 * math.pi * k * torch.arange(size, dtype=torch.float64) / size)
        amplitude = float((row * expected_shape).sum() / (expected_shape ** 2).sum())
        # A pure cosine:
        assert torch.allclose(row, amplitude * expected_shape, atol=1e-6 * abs(amplitude))
        amplitudes[k] = amplitude
    assert amplitudes[2] / amplitudes[8] == pytest.approx(4.0 ** decay, rel=1e-4)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match='decay must be >= 0 and margin in'):
        FourierParameterization(margin=0.6)
    with pytest.raises(ValueError, match=r"parameterization type must be one of \['fourier', "
                                         r"'pixels'\], got 'wavelet'"):
        InversionSynthesizer([teacher()], [1.0], total_steps=2, parameterization='wavelet')


def test_an_inversion_in_the_spectrum_starts_from_its_images_and_refines_both_resolutions():
    synthesizer = InversionSynthesizer(
        [teacher()], [1.0], total_steps=6, lowres_steps=3, lowres_scale=0.5, lr=0.2,
        init='dead_leaves', parameterization=dict(type='fourier', decay=1.0))
    rng = torch.Generator().manual_seed(0)
    state = rng.get_state()
    cohort = synthesizer.start(targets(), rng)
    start = dead_leaves(2, 64, 64, torch.Generator().set_state(state)).clamp(0.02, 0.98)
    assert torch.allclose(synthesizer.pixels(cohort), start, atol=1e-5)
    synthesizer.refine(cohort, 3, rng)
    assert synthesizer.pixels(cohort).shape == (2, 3, 64, 64)
    synthesizer.refine(cohort, 3, rng)
    assert synthesizer.pixels(cohort).shape == (2, 3, 128, 128)
    images = synthesizer.images(cohort)
    assert images.shape == (2, 3, 128, 128) and 0 <= images.min() and images.max() <= 255


def test_refining_the_spectrum_lowers_the_inversion_loss():
    # The BN term alone, without random augmentations, so its descent is not masked by them.
    synthesizer = InversionSynthesizer(
        [teacher()], [1.0], total_steps=12, lr=0.4, parameterization='fourier',
        loss=dict(bn_weight=1.0, det_weight=0.,
                  augment=dict(jitter=0, flip=False, brightness=0., contrast=0.)))
    rng = torch.Generator().manual_seed(0)
    cohort = synthesizer.start(targets(), rng)
    first = synthesizer.refine(cohort, 1, rng)
    synthesizer.refine(cohort, 9, rng)
    last = synthesizer.refine(cohort, 2, rng)
    assert last['syn_bn_t0'] < 0.95 * first['syn_bn_t0']
    pixels = synthesizer.pixels(cohort)
    assert 0 < pixels.min() and pixels.max() < 1  # the sigmoid keeps them inside
