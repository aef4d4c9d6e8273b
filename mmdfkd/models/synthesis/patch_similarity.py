"""The patch-similarity prior of PSAQ-ViT (Li et al., ECCV 2022) for teachers without BatchNorm
statistics: on real images a ViT's self-attention gives patches of different content different
features, so the cosine similarities between the patch tokens of an image spread over a wide
range; on noise they bunch together. Maximizing the entropy of their distribution (estimated
with a Gaussian kernel density) pushes synthetic images toward that diversity."""
import math
from typing import List, Tuple

import torch
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor, nn


def attention_layers(model: nn.Module) -> List[Tuple[str, nn.Module, int]]:
    """The self-attention modules of every timm Vision Transformer inside ``model``.

    Returns:
        ``(name, attn, num_prefix_tokens)`` per block, in forward-definition order: the
        attention module of each block, and how many prefix (class, register) tokens lead its
        output's token sequence.
    """
    layers = []
    for name, module in model.named_modules():
        if isinstance(module, VisionTransformer):
            prefix = module.num_prefix_tokens
            layers.extend((f'{name}.blocks.{i}.attn', block.attn, prefix)
                          for i, block in enumerate(module.blocks))
    return layers


def similarity_entropy(tokens: Tensor, rng: torch.Generator, *, num_pairs: int = 4096,
                       bins: int = 64, bandwidth: float = 0.05) -> Tensor:
    """The entropy of the distribution of cosine similarities between an image's patch tokens,
    averaged over images.

    For each image, the similarities of ``num_pairs`` random pairs of distinct tokens (all
    pairs if there are fewer) are smoothed by a Gaussian kernel of width ``bandwidth`` and
    evaluated on ``bins`` points evenly spread over [-1, 1]; the normalized values form a
    discrete distribution whose Shannon entropy (nats) is returned. It is at most
    ``log(bins)`` (similarities spread over the whole range) and smallest, the entropy of the
    kernel alone, when all pairs have the same similarity.

    Args:
        tokens: Patch tokens, (N, L, C) with L >= 2.
        rng: Random source of the pairs (on the CPU).
        num_pairs: Pairs per image. Defaults to 4096.
        bins: Points of the density estimate. Defaults to 64.
        bandwidth: Kernel width, in cosine-similarity units. Defaults to 0.05.

    Returns:
        The mean entropy over the N images, a scalar differentiable in ``tokens``.

    Raises:
        ValueError: If there are fewer than 2 tokens or a setting is out of range.
    """
    num, length, _ = tokens.shape
    if length < 2:
        raise ValueError(f'patch similarity needs at least 2 tokens per image, got {length}.')
    if num_pairs < 1 or bins < 2 or bandwidth <= 0:
        raise ValueError(f'need num_pairs >= 1, bins >= 2 and bandwidth > 0, got {num_pairs}, '
                         f'{bins}, {bandwidth}.')
    unit = nn.functional.normalize(tokens.float(), dim=-1)
    total_pairs = length * (length - 1) // 2
    if total_pairs <= num_pairs:
        first, second = torch.triu_indices(length, length, offset=1)
    else:
        first = torch.randint(0, length, (num_pairs, ), generator=rng)
        # a different second token: shift by 1 .. length - 1, modulo length
        second = (first + torch.randint(1, length, (num_pairs, ), generator=rng)) % length
    first, second = first.to(tokens.device), second.to(tokens.device)
    sims = (unit[:, first] * unit[:, second]).sum(-1)  # (N, P)
    grid = torch.linspace(-1, 1, bins, device=tokens.device)
    density = torch.exp(-0.5 * ((sims[..., None] - grid) / bandwidth)**2).mean(1)  # (N, bins)
    prob = density / density.sum(-1, keepdim=True).clamp_min(1e-12)
    return -(prob * prob.clamp_min(1e-12).log()).sum(-1).mean()


class PatchSimilarityLoss:
    """Records, during a teacher forward pass, the patch-similarity entropy of the output of
    every self-attention module of the teacher's ViT(s) (PSAQ-ViT); the loss is the mean over
    those layers of ``log(bins) - entropy``: 0 when the similarities are spread evenly over
    [-1, 1], largest when they all coincide.

    Use as a context manager around the forward pass; hooks are removed on exit.

    Args:
        model: The teacher.
        rng: Random source of the token pairs.
        num_pairs: Token pairs per image. Defaults to 4096.
        bins: Points of the density estimate. Defaults to 64.
        bandwidth: Kernel width. Defaults to 0.05.

    Raises:
        ValueError: If the model has no timm Vision Transformer.
    """

    def __init__(self, model: nn.Module, rng: torch.Generator, num_pairs: int = 4096,
                 bins: int = 64, bandwidth: float = 0.05) -> None:
        self.layers = attention_layers(model)
        if not self.layers:
            raise ValueError(f'{type(model).__name__} has no timm VisionTransformer, so the '
                             'patch-similarity prior cannot apply; set its weight to 0.')
        self.rng = rng
        self.settings = dict(num_pairs=num_pairs, bins=bins, bandwidth=bandwidth)
        self.entropies: List[Tensor] = []
        self._handles: list = []

    def __enter__(self) -> 'PatchSimilarityLoss':
        self.entropies = [None] * len(self.layers)
        for i, (_, attn, prefix) in enumerate(self.layers):
            self._handles.append(attn.register_forward_hook(self._hook(i, prefix)))
        return self

    def __exit__(self, *exc_info) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, index: int, prefix: int):

        def record(module: nn.Module, args: tuple, output: Tensor) -> None:
            if self.entropies[index] is None:
                self.entropies[index] = similarity_entropy(output[:, prefix:], self.rng,
                                                           **self.settings)

        return record

    def loss(self) -> Tensor:
        """Mean over the layers seen in the last forward pass of ``log(bins) - entropy``."""
        seen = [e for e in self.entropies if e is not None]
        if not seen:
            raise RuntimeError('No ViT attention layer ran inside the PatchSimilarityLoss block.')
        return math.log(self.settings['bins']) - sum(seen) / len(seen)
