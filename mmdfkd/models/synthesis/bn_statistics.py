"""The BatchNorm-statistics prior of DeepInversion: synthetic batches should reproduce the
running statistics every BN layer of the teacher stored from its training data."""
from typing import List, Tuple

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm


def bn_layers(model: nn.Module) -> List[Tuple[str, _BatchNorm]]:
    """BatchNorm layers of ``model`` that hold running statistics, in forward-definition
    order."""
    return [(name, m) for name, m in model.named_modules()
            if isinstance(m, _BatchNorm) and m.track_running_stats
            and m.running_mean is not None]


def describe_bn_prior(model: nn.Module) -> Tuple[str, str]:
    """Says what a teacher's BN statistics can teach about its training images.

    Args:
        model: A teacher detector.

    Returns:
        ``(status, message)``: status ``'trained'`` (BN statistics collected on the
        detector's own training data: the prior applies), ``'frozen'`` (the backbone kept its
        pretraining statistics, ``norm_eval=True``: they describe the pretraining images, e.g.
        ImageNet, not the detection data) or ``'none'`` (no BN with running statistics, e.g.
        GroupNorm or LayerNorm: no BN prior at all).
    """
    layers = bn_layers(model)
    if not layers:
        return 'none', (f'{type(model).__name__} has no BatchNorm layer with running '
                        'statistics (GroupNorm/LayerNorm): the BN-statistics prior is off; '
                        'images are shaped by the detection loss and the image priors only.')
    frozen = [name for name, module in model.named_modules()
              if getattr(module, 'norm_eval', False)]
    if frozen:
        return 'frozen', (f'{len(layers)} BN layers, but {frozen} kept norm_eval=True: their '
                          'statistics come from backbone pretraining, not from the detector\'s '
                          'training data; the BN prior pulls images towards the pretraining '
                          'data. Train the teacher with norm_eval=False for a faithful prior.')
    return 'trained', (f'{len(layers)} BN layers with statistics of the detector\'s training '
                       'data: BN-statistics prior in force.')


class BNStatisticsLoss:
    """Records, during a teacher forward pass, how far each BN layer's batch statistics are
    from its running statistics.

    For BN layer ``l`` with input ``x`` (N, C, H, W):
    ``d_l = ||mean(x) - running_mean||_2 + ||var(x) - running_var||_2`` with mean and
    (biased) variance over N, H and W. The loss is the mean of ``d_l`` over layers, with the
    first layer's term multiplied by ``first_multiplier`` (DeepInversion/DIODE give the first
    BN a larger weight: it sees raw pixel statistics).

    Use as a context manager around the forward pass; hooks are removed on exit.

    Args:
        model: The teacher.
        first_multiplier: Weight of the first BN layer relative to the others. Defaults to
            10.

    Raises:
        ValueError: If the model has no BN layer with running statistics.
    """

    def __init__(self, model: nn.Module, first_multiplier: float = 10.) -> None:
        self.layers = bn_layers(model)
        if not self.layers:
            raise ValueError(f'{type(model).__name__} has no BatchNorm layer with running '
                             'statistics, so the BN-statistics loss cannot apply; set its '
                             'weight to 0.')
        self.first_multiplier = first_multiplier
        self.distances: List[Tensor] = []
        self._handles: list = []

    def __enter__(self) -> 'BNStatisticsLoss':
        self.distances = [None] * len(self.layers)
        for i, (_, layer) in enumerate(self.layers):
            self._handles.append(layer.register_forward_hook(self._hook(i)))
        return self

    def __exit__(self, *exc_info) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, index: int):

        def record(module: _BatchNorm, args: tuple, output: Tensor) -> None:
            if self.distances[index] is not None:
                return  # a layer called twice (shared heads) is scored on its first call
            x = args[0]
            dims = [0] + list(range(2, x.dim()))
            var, mean = torch.var_mean(x, dim=dims, unbiased=False)
            self.distances[index] = (torch.norm(mean - module.running_mean, 2) +
                                     torch.norm(var - module.running_var, 2))

        return record

    def loss(self) -> Tensor:
        """The weighted mean distance of the layers seen in the last forward pass."""
        seen = [(i, d) for i, d in enumerate(self.distances) if d is not None]
        if not seen:
            raise RuntimeError('No BatchNorm layer ran inside the BNStatisticsLoss block.')
        weights = [self.first_multiplier if i == seen[0][0] else 1. for i, _ in seen]
        total = sum(w * d for w, (_, d) in zip(weights, seen))
        return total / len(seen)
