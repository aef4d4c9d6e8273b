"""How an inversion represents the images it optimizes: as pixels, or as a decorrelated Fourier
spectrum (Mordvintsev et al., "Differentiable Image Parameterizations", Distill 2018).

Gradient steps on raw pixels put most of their change into the highest spatial frequencies,
where natural images have the least energy: images inverted in few steps come out as
high-frequency colour noise. A spectrum scaled by 1/f (natural images' amplitude spectrum) with
decorrelated colours makes a step of the same size mostly a change of low frequencies and of
brightness, so the optimization moves toward natural-looking images from its first steps.

An image parameterization maps optimized parameters to images in [0, 1] (loader channel
order, BGR) and back; both directions are exact up to rounding, so an inversion can start from
any image (:mod:`.starting_images`) and change resolution mid-way.
"""
from functools import lru_cache
from typing import Dict, Tuple, Type

import torch
from torch import Tensor

# Lucid's colour correlation square root for RGB (from ImageNet's colour covariance), scaled by
# its largest column norm; the rows and columns are reversed for BGR images.
_RGB_CORRELATION_SQRT = torch.tensor([[0.26, 0.09, 0.02],
                                      [0.27, 0.00, -0.05],
                                      [0.27, -0.09, 0.03]])
_BGR_CORRELATION = (_RGB_CORRELATION_SQRT / _RGB_CORRELATION_SQRT.norm(dim=0).max()).flip(0, 1)


class ImageParameterization:
    """Maps between images in [0, 1], (B, 3, H, W), and the parameters an optimizer updates."""

    def encode(self, images: Tensor) -> Tensor:
        """The parameters of ``images`` (a new tensor, not requiring grad)."""
        raise NotImplementedError

    def decode(self, params: Tensor, hw: Tuple[int, int]) -> Tensor:
        """The (B, 3, H, W) images in [0, 1] of ``params``, differentiably; ``hw`` is (H, W)."""
        raise NotImplementedError

    def project_(self, params: Tensor) -> None:
        """Brings ``params`` back to their valid set in place, after an optimizer step."""


class PixelParameterization(ImageParameterization):
    """The pixels themselves, clamped to [0, 1] after each step."""

    def encode(self, images: Tensor) -> Tensor:
        return images.detach().clone()

    def decode(self, params: Tensor, hw: Tuple[int, int]) -> Tensor:
        return params

    @torch.no_grad()
    def project_(self, params: Tensor) -> None:
        params.clamp_(0, 1)


class FourierParameterization(ImageParameterization):
    """A real 2-D spectrum per channel, scaled by 1/f^decay and normalized to unit mean power,
    in decorrelated colour channels, through a sigmoid: ``image = sigmoid(C @
    irfft2(scale * spectrum))`` with ``C`` Lucid's colour correlation square root.

    With the unit mean power, white changes of the parameters give changes of the same variance
    in the sigmoid's input (of which a quarter reaches the pixels at mid-grey), so learning
    rates are about four times those of :class:`PixelParameterization`.

    Args:
        decay: Exponent of the 1/f scaling (1: natural images' amplitude spectrum).
        margin: Images are encoded after clamping to [margin, 1 - margin], where the sigmoid's
            slope is still at least ``margin * (1 - margin)``.
    """

    def __init__(self, decay: float = 1.0, margin: float = 0.02) -> None:
        if decay < 0 or not 0 < margin < 0.5:
            raise ValueError(f'decay must be >= 0 and margin in (0, 0.5), got decay={decay}, '
                             f'margin={margin}.')
        self.decay = decay
        self.margin = margin

    def encode(self, images: Tensor) -> Tensor:
        x = images.detach().clamp(self.margin, 1 - self.margin)
        logits = torch.log(x) - torch.log1p(-x)
        colour = torch.linalg.inv(_BGR_CORRELATION).to(images)
        decorrelated = torch.einsum('ij,bjhw->bihw', colour, logits)
        spectrum = torch.fft.rfft2(decorrelated, norm='ortho')
        scale = _spectrum_scale(tuple(images.shape[-2:]), self.decay).to(images.device)
        return torch.view_as_real(spectrum / scale).contiguous()

    def decode(self, params: Tensor, hw: Tuple[int, int]) -> Tensor:
        scale = _spectrum_scale(tuple(hw), self.decay).to(params.device)
        spectrum = torch.view_as_complex(params) * scale
        decorrelated = torch.fft.irfft2(spectrum, s=tuple(hw), norm='ortho')
        colour = _BGR_CORRELATION.to(decorrelated)
        return torch.sigmoid(torch.einsum('ij,bjhw->bihw', colour, decorrelated))


@lru_cache(maxsize=16)
def _spectrum_scale(hw: Tuple[int, int], decay: float) -> Tensor:
    """1/f^decay on the rfft2 grid of an (H, W) image (frequencies below one cycle per image
    count as one), normalized to unit mean square."""
    height, width = hw
    fy = torch.fft.fftfreq(height).view(height, 1)
    fx = torch.fft.rfftfreq(width).view(1, -1)
    freq = torch.sqrt(fy ** 2 + fx ** 2).clamp(min=1.0 / max(height, width))
    scale = freq.pow(-decay)
    return scale / scale.pow(2).mean().sqrt()


IMAGE_PARAMETERIZATIONS: Dict[str, Type[ImageParameterization]] = dict(
    pixels=PixelParameterization, fourier=FourierParameterization)
