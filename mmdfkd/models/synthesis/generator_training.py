"""Train a box-conditioned generator network on the inversion loss, and draw images with it."""
from typing import Dict, List, Tuple

import torch
from mmdet.registry import MODELS
from mmengine.optim import OptimWrapper, build_optim_wrapper
from torch import Tensor

from .box_conditioned_generator import BoxConditionedGenerator
from .detector_inverter import DetectorInverter, NonFiniteSynthesisError, describe_parts

# DAFL/DFAD-style default: Adam with a short memory of the first moment.
DEFAULT_GENERATOR_OPTIM_WRAPPER = dict(
    type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-3, betas=(0.5, 0.999)))


def build_generator(cfg: dict, optim_wrapper_cfg: dict, dataset,
                    device: torch.device) -> Tuple[BoxConditionedGenerator, OptimWrapper]:
    """Builds the generator network and its optimizer wrapper.

    Args:
        cfg: Network config; ``num_classes`` and ``img_size`` default to the dataset's.
        optim_wrapper_cfg: mmengine optim wrapper config.
        dataset: The train dataset (``metainfo['classes']``, and ``img_size`` if it has one).
        device: Where the network lives (the teachers' device).

    Returns:
        ``(network, optim_wrapper)``.

    Raises:
        ValueError: If the network's ``img_size`` differs from the dataset's (its boxes are
            sampled in the dataset's image size).
    """
    cfg = dict(cfg)
    cfg.setdefault('num_classes', len(dataset.metainfo['classes']))
    if hasattr(dataset, 'img_size'):
        size = tuple(cfg.setdefault('img_size', tuple(dataset.img_size)))
        if size != tuple(dataset.img_size):
            raise ValueError(
                f'The generator draws {size[0]}x{size[1]} images but the train dataset samples '
                f'boxes in {dataset.img_size[0]}x{dataset.img_size[1]} images: remove '
                'img_size from the generator config (it defaults to the dataset\'s) or make '
                'the two equal.')
    network = MODELS.build(cfg).to(device)
    return network, build_optim_wrapper(network, optim_wrapper_cfg)


def generator_step(network: BoxConditionedGenerator, optim_wrapper: OptimWrapper,
                   inverter: DetectorInverter, boxes: List[Tensor], labels: List[Tensor],
                   metainfo: List[dict], full_hw: Tuple[int, int],
                   rng: torch.Generator) -> Dict[str, float]:
    """One update of the generator network: images for the targets, the inversion loss on
    them (teachers' detection loss, BN statistics, priors, competition), a step of its
    optimizer.

    Args:
        network: The generator, in train mode.
        optim_wrapper: Its optimizer wrapper.
        inverter: The inverter whose ``image_loss`` is minimized.
        boxes: Per image, target boxes (K, 4) in pixels, on the network's device.
        labels: Per image, target labels (K,).
        metainfo: Per image, data sample metainfo.
        full_hw: Image size (H, W).
        rng: Random source of the noise and the augmentations.

    Returns:
        The loss parts, as floats.

    Raises:
        NonFiniteSynthesisError: If the loss is not finite; the network is not updated.
    """
    noise = network.sample_noise(len(boxes), rng)
    images = network(noise, boxes, labels)
    loss, log = inverter.image_loss(images, boxes, labels, metainfo, full_hw, rng)
    if not torch.isfinite(loss):
        raise NonFiniteSynthesisError(
            f'non-finite generator loss ({describe_parts(log)}); the generator was not updated')
    optim_wrapper.update_params(loss)
    return log


@torch.no_grad()
def generate_images(network: BoxConditionedGenerator, boxes: List[Tensor],
                    labels: List[Tensor], rng: torch.Generator) -> Tensor:
    """Images for the targets in loader pixel space: (N, 3, H, W), 0-255 rounded.

    Raises:
        NonFiniteSynthesisError: If the network draws NaN or inf values.
    """
    noise = network.sample_noise(len(boxes), rng)
    images = network(noise, boxes, labels)
    if not torch.isfinite(images).all():
        raise NonFiniteSynthesisError('the generator network drew non-finite images')
    return (images * 255).round()
