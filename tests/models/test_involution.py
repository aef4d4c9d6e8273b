"""Involution: equal to a per-pixel reference, gradients, published defaults, argument checks."""
import math

import pytest
import torch

from mmdfkd.models.backbones import Involution


def randomise_norms(module: torch.nn.Module) -> None:
    """Non-trivial running statistics and affine parameters in every BatchNorm."""
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)


def reference_involution(inv: Involution, x: torch.Tensor) -> torch.Tensor:
    """The involution of ``x`` (B, C, H, W) computed pixel by pixel from ``inv``'s parameters,
    with the BatchNorm in eval mode."""
    B, C, H, W = x.shape
    K, s, G, gc = inv.kernel_size, inv.stride, inv.groups, inv.group_channels
    pad = (K - 1) // 2
    w1 = inv.conv1.conv.weight[:, :, 0, 0]
    bn = inv.conv1.bn
    w2, b2 = inv.conv2.conv.weight[:, :, 0, 0], inv.conv2.conv.bias
    Ho, Wo = math.ceil(H / s), math.ceil(W / s)
    out = torch.zeros(B, C, Ho, Wo, dtype=x.dtype)
    for b in range(B):
        for i in range(Ho):
            for j in range(Wo):
                # The kernel comes from the mean over the stride x stride cell of this output
                # pixel, clipped to the image.
                cell = x[b, :, i * s:(i + 1) * s, j * s:(j + 1) * s].mean(dim=(1, 2))
                hidden = (w1 @ cell - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps)
                hidden = torch.relu(hidden * bn.weight + bn.bias)
                kernel = (w2 @ hidden + b2).reshape(G, K, K)
                for c in range(C):
                    total = 0.
                    for u in range(K):
                        for v in range(K):
                            y, z = i * s - pad + u, j * s - pad + v
                            if 0 <= y < H and 0 <= z < W:  # zero padding outside
                                total = total + kernel[c // gc, u, v] * x[b, c, y, z]
                    out[b, c, i, j] = total
    return out


@pytest.mark.parametrize('channels,kernel_size,stride,group_channels,reduction_ratio,size', [
    (8, 3, 1, 4, 2, (5, 6)),     # two groups
    (8, 3, 2, 2, 4, (7, 5)),     # four groups, stride 2 on odd sizes
    (16, 5, 2, 16, 4, (6, 6)),   # one group, stride 2 on even sizes
    (4, 7, 1, 1, 1, (3, 4)),     # a group per channel, kernel larger than the image
    (6, 3, 3, 3, 3, (8, 7)),     # stride 3, sizes not multiples of it
])
def test_equals_per_pixel_reference(channels, kernel_size, stride, group_channels,
                                    reduction_ratio, size):
    torch.manual_seed(0)
    inv = Involution(channels, kernel_size, stride, group_channels, reduction_ratio).double()
    randomise_norms(inv)
    inv.eval()
    x = torch.randn(2, channels, *size, dtype=torch.float64)
    with torch.no_grad():
        out = inv(x)
        expected = reference_involution(inv, x)
    assert out.shape == (2, channels, math.ceil(size[0] / stride), math.ceil(size[1] / stride))
    torch.testing.assert_close(out, expected)


def test_published_defaults():
    inv = Involution(64)
    assert (inv.kernel_size, inv.stride, inv.group_channels, inv.groups) == (7, 1, 16, 4)
    assert inv.conv1.conv.out_channels == 16  # reduction ratio 4
    assert isinstance(inv.conv1.bn, torch.nn.BatchNorm2d)
    assert inv.conv2.conv.out_channels == 7 * 7 * 4
    assert inv.conv2.conv.bias is not None and inv.conv1.conv.bias is None
    assert inv(torch.randn(2, 64, 9, 9)).shape == (2, 64, 9, 9)


def test_gradients_reach_input_and_kernel_generation():
    torch.manual_seed(0)
    inv = Involution(8, 3, stride=2, group_channels=4, reduction_ratio=2).train()
    x = torch.randn(2, 8, 7, 6, requires_grad=True)
    (inv(x) * torch.randn(2, 8, 4, 3)).sum().backward()
    grads = {'input': x.grad, 'conv1': inv.conv1.conv.weight.grad,
             'norm': inv.conv1.bn.weight.grad, 'conv2': inv.conv2.conv.weight.grad,
             'conv2 bias': inv.conv2.conv.bias.grad}
    for name, grad in grads.items():
        assert grad is not None and torch.isfinite(grad).all(), name
        assert grad.abs().sum() > 0, name


@pytest.mark.parametrize('kwargs,match', [
    (dict(channels=24), r'channels=24 is not divisible by group_channels=16; make channels a '
                        r'multiple of 16'),
    (dict(channels=16, reduction_ratio=3), r'channels=16 is not divisible by reduction_ratio=3'),
    (dict(channels=16, kernel_size=4), r'kernel_size must be odd.*got 4, use e\.g\. 3 or 5'),
    (dict(channels=16, stride=0), r'stride must be a positive integer, got 0'),
    (dict(channels=16, group_channels=2.0), r'group_channels must be a positive integer, got 2.0'),
])
def test_bad_arguments_say_what_to_change(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Involution(**kwargs)


@pytest.mark.parametrize('norm_cfg', [dict(type='BN'), dict(type='GN', num_groups=1)])
def test_kernel_generator_norm_sets_how_the_output_scales(norm_cfg):
    """In eval mode, features 3 times larger give kernels about 3 times larger through a
    BatchNorm kernel generator (fixed running statistics), so an output about 9 times larger;
    a per-image norm gives the same kernels, so exactly 3 times, as a convolution would."""
    torch.manual_seed(0)
    inv = Involution(32, norm_cfg=norm_cfg).train()
    with torch.no_grad():
        for _ in range(3):  # running statistics for the BN kernel generator
            inv(torch.randn(4, 32, 16, 16))
    inv.eval()
    inv.conv2.conv.bias.data.zero_()  # a constant kernel part would not scale
    x = torch.randn(2, 32, 16, 16)
    with torch.no_grad():
        small, large = inv(x), inv(3 * x)
    if norm_cfg['type'] == 'GN':
        torch.testing.assert_close(large, 3 * small, rtol=1e-4, atol=1e-4)
    else:
        assert (large.abs().mean() / small.abs().mean()).item() == pytest.approx(9, rel=0.1)
