"""lanczos_resize against PIL's Lanczos filter on a known image, on a band-limited signal
against its analytic samples, and its basic properties: constants stay constant, unchanged
sizes are the identity, gradients flow, bad arguments are refused."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from mmdfkd.models.utils.lanczos import lanczos_resize


def _pattern(height: int = 24, width: int = 32) -> np.ndarray:
    """A float32 gradient plus a checkerboard of 4-pixel squares: smooth ramps and sharp
    edges, values in [0, 1.3]."""
    yy, xx = np.mgrid[0:height, 0:width]
    checker = ((yy // 4 + xx // 4) % 2) * 0.4
    return (xx / width * 0.6 + yy / height * 0.3 + checker).astype(np.float32)


def _interior(in_size: int, out_size: int, order: int) -> np.ndarray:
    """Which output pixels along an axis have all their kernel taps inside the input (there
    PIL, which drops and renormalizes the taps beyond the border, and the replicated border
    of lanczos_resize agree)."""
    scale = in_size / out_size
    centers = (np.arange(out_size) + 0.5) * scale - 0.5
    support = order * max(scale, 1.0)
    return (centers - support >= 0) & (centers + support <= in_size - 1)


@pytest.mark.parametrize('out_hw', [(60, 80), (12, 16)], ids=['up_x2.5', 'down_x0.5'])
def test_matches_pil_lanczos_away_from_the_borders(out_hw):
    """Order 3 is PIL's ``Image.LANCZOS`` (same kernel, alignment and stretching when
    shrinking): on a float ('F' mode) image they agree to 1e-5 (float32 rounding; 1e-5 of the
    image's 1.3 range) wherever the kernel stays inside the image. At the borders PIL drops
    the taps outside and renormalizes, while lanczos_resize replicates the border pixel, so
    they differ there (by up to 3.2e-3 on this image), which is only checked to stay small."""
    image = _pattern()
    pil = np.asarray(Image.fromarray(image).resize(out_hw[::-1], Image.LANCZOS))
    ours = lanczos_resize(torch.from_numpy(image)[None, None], out_hw, order=3)[0, 0].numpy()
    assert ours.shape == pil.shape == out_hw
    rows = _interior(image.shape[0], out_hw[0], 3)
    cols = _interior(image.shape[1], out_hw[1], 3)
    assert rows.sum() >= 2 and cols.sum() >= 2  # the comparison covers some pixels
    interior = np.abs(ours - pil)[np.ix_(rows, cols)]
    assert interior.max() < 1e-5
    assert np.abs(ours - pil).max() < 1e-2


def _cosine_field(size: int) -> torch.Tensor:
    """cos(2 pi (3 y + 0.05)) cos(2 pi (4 x + 0.16)) sampled at the centres of a
    ``size`` x ``size`` grid on the unit square: 3 and 4 cycles, band-limited."""
    centres = (torch.arange(size, dtype=torch.float64) + 0.5) / size
    return (torch.cos(2 * math.pi * 3 * centres[:, None] + 0.3) *
            torch.cos(2 * math.pi * 4 * centres[None, :] + 1.0))


def test_band_limited_signal_is_reconstructed_far_better_than_bilinear():
    """A 24 x 24 sampling of a low-frequency cosine, upsampled x4, against the cosine sampled
    at 96 x 96, away from the borders (24 output pixels: 6 input pixels, beyond both
    kernels' reach)."""
    low = _cosine_field(24)[None, None].float()
    high = _cosine_field(96)

    def error(upsampled: torch.Tensor) -> float:
        return (upsampled[0, 0].double() - high)[24:-24, 24:-24].abs().max().item()

    bilinear = error(F.interpolate(low, size=(96, 96), mode='bilinear', align_corners=False))
    lanczos3 = error(lanczos_resize(low, (96, 96), order=3))
    lanczos5 = error(lanczos_resize(low, (96, 96), order=5))
    assert bilinear > 0.15  # about 0.18: bilinear flattens the peaks
    assert lanczos3 < 0.03 and lanczos3 < bilinear / 5
    assert lanczos5 <= lanczos3 and lanczos5 < 0.015


@pytest.mark.parametrize('order', [3, 5])
@pytest.mark.parametrize('out_hw', [(50, 37), (7, 9), (24, 70)])
def test_a_constant_image_stays_constant(order, out_hw):
    images = torch.full((2, 3, 24, 32), 0.7)
    resized = lanczos_resize(images, out_hw, order)
    assert resized.shape == (2, 3, *out_hw)
    torch.testing.assert_close(resized, torch.full_like(resized, 0.7))


def test_an_unchanged_size_is_the_identity():
    images = torch.rand(2, 3, 13, 17, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(lanczos_resize(images, (13, 17), order=5), images)


def test_gradients_flow_to_the_images_in_their_dtype():
    images = torch.rand(1, 2, 8, 10, dtype=torch.float64, requires_grad=True)
    resized = lanczos_resize(images, (20, 25))
    assert resized.dtype == torch.float64
    resized.sum().backward()
    # Every input pixel reaches the output, by as much as it is spread over (about 2.5^2).
    assert images.grad is not None and (images.grad > 0).all()
    torch.testing.assert_close(images.grad.sum(), torch.tensor(20. * 25 * 2, dtype=torch.float64))


def test_bad_arguments_are_refused():
    images = torch.zeros(1, 1, 8, 8)
    with pytest.raises(ValueError, match='order must be an integer >= 1'):
        lanczos_resize(images, (4, 4), order=0)
    with pytest.raises(ValueError, match='order must be an integer >= 1'):
        lanczos_resize(images, (4, 4), order=2.5)
    with pytest.raises(ValueError, match=r'size must be \(h, w\), two positive integers'):
        lanczos_resize(images, (4, 0))
    with pytest.raises(ValueError, match=r'size must be \(h, w\), two positive integers'):
        lanczos_resize(images, 4)
    with pytest.raises(ValueError, match=r'4-D \(N, C, H, W\) floating-point tensor, got '
                                         r'shape \(1, 1, 8, 8\) of torch.uint8'):
        lanczos_resize(images.to(torch.uint8), (4, 4))
    with pytest.raises(ValueError, match='4-D'):
        lanczos_resize(images[0], (4, 4))
