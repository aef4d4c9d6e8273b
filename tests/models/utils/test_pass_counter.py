"""PassCounter counts forward and backward passes per sample, at any input size, with no_grad
and autograd.grad, across several modules, and leaves no hook behind."""
import torch
from torch import nn

from mmdfkd.models.utils import PassCounter


class _Detector(nn.Module):
    """A stand-in detector: a backbone, and a head that reads its features."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Conv2d(4, 1, 1)
        self.requires_grad_(False)  # frozen, as a teacher is

    def forward(self, x):
        return self.head(self.backbone(x))


def test_counts_passes_per_sample_by_hand():
    teachers = [_Detector(), _Detector()]
    pixels = torch.rand(3, 3, 16, 16, requires_grad=True)
    with PassCounter([t.backbone for t in teachers]) as passes:
        # One step of inversion: both teachers see the batch of 3, the loss is
        # differentiated in the pixels: 2 x 3 forward and 2 x 3 backward passes.
        loss = sum(t(pixels * 2 - 1).mean() for t in teachers)
        torch.autograd.grad(loss, [pixels])
        # A low-resolution step of the first teacher alone, then backward: 3 more each.
        teachers[0](nn.functional.interpolate(pixels, size=(8, 8))).sum().backward()
        # Scoring without gradients (false-positive sampling), twice: forward only, 2 x 3.
        with torch.no_grad():
            teachers[0](pixels)
            teachers[1](pixels)
        # A batch of 2 whose output is used but not differentiated: forward only.
        teachers[1](torch.rand(2, 3, 16, 16)).mean()
        # The head is not watched: a call of it alone counts nothing.
        teachers[0].head(torch.rand(5, 4, 16, 16))
    assert (passes.forward, passes.backward) == (6 + 3 + 6 + 2, 6 + 3)

    # A pass made inside the block and differentiated after it still counts its backward.
    with PassCounter([teachers[0].backbone]) as late:
        out = teachers[0](pixels)
    teachers[0](pixels)  # outside the block: not counted
    out.sum().backward()
    assert (late.forward, late.backward) == (3, 3)
    assert all(not t.backbone._forward_hooks for t in teachers)


def test_keyword_inputs_are_counted():
    module = nn.Linear(4, 2)
    with PassCounter([module]) as passes:
        module(input=torch.rand(7, 4))
    assert (passes.forward, passes.backward) == (7, 0)
