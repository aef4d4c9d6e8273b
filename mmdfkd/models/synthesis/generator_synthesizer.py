"""Synthesize images with a generator network trained on the inversion loss (DAFL, DFAD)."""
from typing import Dict, Optional, Sequence

import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.optim import build_optim_wrapper
from torch import Tensor

from mmdfkd.registry import SYNTHESIZERS
from .base import (NonFiniteSynthesisError, Retry, SyntheticBatch, Synthesizer, Targets,
                   describe_parts, run_once)

# DAFL/DFAD-style default: Adam with a short memory of the first moment.
DEFAULT_OPTIM_WRAPPER = dict(type='OptimWrapper',
                             optimizer=dict(type='Adam', lr=1e-3, betas=(0.5, 0.999)))


@SYNTHESIZERS.register_module()
class GeneratorSynthesizer(Synthesizer):
    """A generator network (``BoxConditionedGenerator``: noise and the batch's box layout in,
    image out) makes every batch.

    During training (:meth:`next_batch`), before the batch is drawn the network takes
    ``steps_per_iter`` steps of its own optimizer wrapper on the :class:`InversionLoss` of its
    images for the batch's targets, so with the competition term (``loss.adi_weight``) it is
    adversarial to the student. Every batch's targets are used.

    A checkpoint (:meth:`state_dict`) holds the network's weights and its optimizer wrapper's
    state: the images themselves are redrawn from them.

    Args:
        teachers, teacher_weights, student, dataset, loss: See :class:`Synthesizer`.
        network: The network config, from mmdet's ``MODELS``. Defaults to
            ``dict(type='BoxConditionedGenerator')``; ``num_classes`` and ``img_size`` default
            to the train dataset's.
        optim_wrapper: mmengine optim wrapper config of the network. Defaults to Adam, lr
            1e-3, betas (0.5, 0.999).
        steps_per_iter: Network updates per training iteration. Defaults to 1.

    Raises:
        ValueError: If ``steps_per_iter`` < 1, or the network's ``img_size`` differs from the
            dataset's.
    """

    has_parameters = True

    def __init__(self,
                 teachers,
                 teacher_weights: Sequence[float],
                 *,
                 student=None,
                 dataset=None,
                 loss: Optional[dict] = None,
                 network: Optional[dict] = None,
                 optim_wrapper: Optional[dict] = None,
                 steps_per_iter: int = 1) -> None:
        if steps_per_iter < 1:
            raise ValueError(f'steps_per_iter must be >= 1, got {steps_per_iter}.')
        super().__init__(teachers, teacher_weights, student, dataset, loss)
        self.steps_per_iter = steps_per_iter
        cfg = dict(dict(type='BoxConditionedGenerator'), **(network or {}))
        if dataset is not None:
            cfg.setdefault('num_classes', len(dataset.metainfo['classes']))
            if hasattr(dataset, 'img_size'):
                size = tuple(cfg.setdefault('img_size', tuple(dataset.img_size)))
                if size != tuple(dataset.img_size):
                    raise ValueError(
                        f'The generator network draws {size[0]}x{size[1]} images but the '
                        f'train dataset samples boxes in {dataset.img_size[0]}x'
                        f'{dataset.img_size[1]} images: remove img_size from the synthesizer\'s '
                        'network config (it defaults to the dataset\'s) or make the two equal.')
        self.network = MODELS.build(cfg).to(self._device())
        self.optim_wrapper = build_optim_wrapper(self.network,
                                                 optim_wrapper or DEFAULT_OPTIM_WRAPPER)

    # ----------------------------------------------------------------------------- training
    def next_batch(self, samples: Sequence[DetDataSample], rng: torch.Generator,
                   retry: Retry = run_once) -> SyntheticBatch:
        """Updates the network ``steps_per_iter`` times on the batch's targets, then lets it
        draw the batch. A retry after non-finite values draws new noise (the random stream
        has moved on)."""
        targets = self.targets_of(samples)
        on_device = targets.to(self._device())
        for _ in range(self.steps_per_iter):
            log = retry(lambda: self.update(on_device, rng), None)
        images = retry(lambda: self._draw(on_device, rng), None)
        return SyntheticBatch(list(images.to(torch.uint8).cpu()), targets, log)

    def update(self, targets: Targets, rng: torch.Generator) -> Dict[str, float]:
        """One update of the network (in train mode): images for the targets, the inversion
        loss on them, a step of its optimizer.

        Args:
            targets: The targets.
            rng: Random source of the noise and the augmentations.

        Returns:
            The loss parts, as floats.

        Raises:
            NonFiniteSynthesisError: If the loss is not finite; the network is not updated.
        """
        targets = targets.to(self._device())
        self.network.train()
        noise = self.network.sample_noise(len(targets), rng)
        images = self.network(noise, targets.boxes, targets.labels)
        loss, log = self.loss(images, targets, rng)
        if not torch.isfinite(loss):
            raise NonFiniteSynthesisError(
                f'non-finite generator loss ({describe_parts(log)}); the generator network '
                'was not updated')
        self.optim_wrapper.update_params(loss)
        return log

    def synthesize(self, targets: Targets, rng: torch.Generator) -> SyntheticBatch:
        """The network's images for the targets, drawn in eval mode (BatchNorm running
        statistics)."""
        self.network.eval()
        images = self._draw(targets.to(self._device()), rng)
        return SyntheticBatch(list(images.to(torch.uint8).cpu()), targets)

    @torch.no_grad()
    def _draw(self, targets: Targets, rng: torch.Generator) -> Tensor:
        """Images for the targets in loader pixel space: (N, 3, H, W), 0-255 rounded.

        Raises:
            NonFiniteSynthesisError: If the network draws NaN or inf values.
        """
        noise = self.network.sample_noise(len(targets), rng)
        images = self.network(noise, targets.boxes, targets.labels)
        if not torch.isfinite(images).all():
            raise NonFiniteSynthesisError('the generator network drew non-finite images')
        return (images * 255).round()

    # -------------------------------------------------------------------------------- state
    def state_dict(self) -> dict:
        """The network's weights and its optimizer wrapper's state."""
        return dict(network=self.network.state_dict(),
                    optim_wrapper=self.optim_wrapper.state_dict())

    def load_state_dict(self, state: dict) -> None:
        self.network.load_state_dict(state['network'])
        self.optim_wrapper.load_state_dict(state['optim_wrapper'])

    def describe_state(self) -> str:
        return 'generator network and optimizer'
