"""Generator losses and augmentations: BN-statistics loss, image priors, box-moving
augmentations (hand-computed cases)."""
import pytest
import torch
from torch import nn

from mmdfkd.models.synthesis.bn_statistics import BNStatisticsLoss, describe_bn_prior
from mmdfkd.models.synthesis.box_augment import augment_with_boxes
from mmdfkd.models.synthesis.image_priors import (l2_prior, total_variation_l1,
                                                  total_variation_l2)


def _two_bn_net() -> nn.Module:
    return nn.Sequential(nn.BatchNorm2d(2), nn.Conv2d(2, 2, 1, bias=False), nn.BatchNorm2d(2))


def test_bn_loss_is_zero_when_batch_statistics_equal_the_running_ones():
    net = _two_bn_net().eval()
    torch.manual_seed(0)
    x = torch.randn(4, 2, 5, 5)
    # Set each BN's running statistics to the statistics of the input it receives.
    with torch.no_grad():
        net[0].running_mean.copy_(x.mean((0, 2, 3)))
        net[0].running_var.copy_(x.var((0, 2, 3), unbiased=False))
        y = net[1](net[0](x))
        net[2].running_mean.copy_(y.mean((0, 2, 3)))
        net[2].running_var.copy_(y.var((0, 2, 3), unbiased=False))
    with BNStatisticsLoss(net) as bn:
        net(x)
    assert bn.loss().item() == pytest.approx(0., abs=1e-5)


def test_bn_loss_hand_computed_with_first_layer_multiplier():
    net = nn.Sequential(nn.BatchNorm2d(1), nn.BatchNorm2d(1)).eval()
    # Input of constant 3: mean 3 and var 0 against running mean 0 and var 1 -> d = 3 + 1.
    # BN 0 outputs (3 - 0) / sqrt(1 + eps) ~ 3, so BN 1 sees the same distance 4.
    x = torch.full((2, 1, 2, 2), 3.)
    with BNStatisticsLoss(net, first_multiplier=10.) as bn:
        net(x)
    assert bn.loss().item() == pytest.approx((10 * 4 + 4) / 2, rel=1e-4)


def test_bn_loss_gradient_reaches_the_input_and_hooks_are_removed():
    net = _two_bn_net().eval()
    x = torch.randn(2, 2, 4, 4, requires_grad=True)
    with BNStatisticsLoss(net) as bn:
        net(x)
    bn.loss().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(not m._forward_hooks for m in net.modules())


def test_describe_bn_prior_tells_trained_frozen_and_absent_statistics():
    assert describe_bn_prior(_two_bn_net())[0] == 'trained'
    frozen = _two_bn_net()
    frozen.norm_eval = True
    status, message = describe_bn_prior(frozen)
    assert status == 'frozen' and 'norm_eval=True' in message
    status, message = describe_bn_prior(nn.Sequential(nn.GroupNorm(1, 2)))
    assert status == 'none' and 'prior is off' in message
    with pytest.raises(ValueError, match='no BatchNorm'):
        BNStatisticsLoss(nn.Sequential(nn.GroupNorm(1, 2)))


def test_total_variation_of_a_constant_image_is_zero_and_hand_computed_otherwise():
    constant = torch.full((2, 3, 6, 7), 0.4)
    assert total_variation_l1(constant).item() == 0
    assert total_variation_l2(constant).item() == 0
    # A vertical edge: columns 0 | 1 in a 1x1x2x2 image.
    edge = torch.tensor([[[[0., 1.], [0., 1.]]]])
    # Horizontal differences (1, 1): mean 1; vertical (0, 0): 0; diagonals 1 and -1: 1 each.
    assert total_variation_l1(edge).item() == pytest.approx(3.)
    # Norms: sqrt(2) + 0 + 1 + 1, one image.
    assert total_variation_l2(edge).item() == pytest.approx(2 ** 0.5 + 2)


def test_l2_prior_hand_computed():
    images = torch.full((1, 1, 2, 2), 1.5)  # each pixel 1 from the centre 0.5: norm 2
    assert l2_prior(images).item() == pytest.approx(2.)


def test_roll_moves_boxes_with_the_content():
    image = torch.zeros(1, 1, 32, 32)
    image[0, 0, 10:14, 4:12] = 1.  # object at x 4-12, y 10-14
    boxes = [torch.tensor([[4., 10., 12., 14.]])]
    rng = torch.Generator().manual_seed(3)
    out, moved, keep = augment_with_boxes(image, boxes, rng, jitter=6)
    ys, xs = torch.nonzero(out[0, 0] > 0.5, as_tuple=True)
    content_box = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()
    torch.testing.assert_close(moved[0][0], content_box)
    assert keep[0].tolist() == [0]


def test_flip_mirrors_boxes_and_lighting_leaves_them():
    image = torch.zeros(1, 1, 16, 20)
    image[0, 0, 2:6, 1:5] = 1.
    boxes = [torch.tensor([[1., 2., 5., 6.]])]
    for seed in range(20):  # some seeds flip, some do not
        out, moved, _ = augment_with_boxes(image, boxes, torch.Generator().manual_seed(seed),
                                           flip=True, brightness=0.3, contrast=0.3)
        ys, xs = torch.nonzero(out[0, 0] > out[0, 0].mean(), as_tuple=True)
        content_box = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()
        torch.testing.assert_close(moved[0][0], content_box)


def test_roll_drops_boxes_pushed_mostly_over_the_edge():
    image = torch.zeros(1, 1, 20, 20)
    boxes = [torch.tensor([[0., 0., 4., 4.], [8., 8., 12., 12.]])]
    # Find a seed whose roll moves the first box mostly out of the image.
    for seed in range(200):
        rng = torch.Generator().manual_seed(seed)
        dy, dx = torch.randint(-6, 7, (2, ), generator=rng).tolist()
        if dx <= -3 and dy >= 0:
            break
    _, moved, keep = augment_with_boxes(image, boxes, torch.Generator().manual_seed(seed),
                                        jitter=6)
    assert keep[0].tolist() == [1]
    torch.testing.assert_close(moved[0], torch.tensor([[8. + dx, 8. + dy, 12. + dx, 12. + dy]]))


def test_augmentations_are_differentiable():
    image = torch.rand(2, 3, 16, 16, requires_grad=True)
    boxes = [torch.tensor([[2., 2., 8., 8.]]), torch.tensor([[4., 4., 12., 12.]])]
    out, _, _ = augment_with_boxes(image, boxes, torch.Generator().manual_seed(0), jitter=4,
                                   flip=True, brightness=0.1, contrast=0.1)
    out.sum().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0


def test_zoom_moves_boxes_with_the_content_in_and_out():
    image = torch.zeros(1, 1, 64, 64)
    image[0, 0, 24:40, 16:40] = 1.  # object at x 16-40, y 24-40, well inside the image
    boxes = [torch.tensor([[16., 24., 40., 40.]])]
    factors = set()
    for seed in range(12):
        out, moved, keep = augment_with_boxes(image, boxes, torch.Generator().manual_seed(seed),
                                              zoom=0.3)
        assert out.shape == image.shape and keep[0].tolist() == [0]
        ys, xs = torch.nonzero(out[0, 0] > 0.5, as_tuple=True)
        content_box = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()
        # Bilinear resizing blurs the object's edge by at most a pixel.
        torch.testing.assert_close(moved[0][0], content_box, atol=1.01, rtol=0)
        width = (moved[0][0, 2] - moved[0][0, 0]).item()
        assert 24 / 1.3 - 1 <= width <= 24 * 1.3 + 1
        factors.add(width > 24)
    assert factors == {True, False}  # zoomed in and out


def test_zoom_drops_boxes_cropped_away_and_pads_with_the_mean_colour():
    image = torch.full((1, 3, 32, 32), 0.25)
    image[:, :, :4, :4] = 1.
    boxes = [torch.tensor([[0., 0., 4., 4.], [12., 12., 20., 20.]])]
    dropped = padded = False
    for seed in range(40):
        out, moved, keep = augment_with_boxes(image, boxes, torch.Generator().manual_seed(seed),
                                              zoom=1.0)
        if 0 not in keep[0].tolist():
            dropped = True
            assert len(moved[0]) == len(keep[0])
        if (moved[0][:, 2] - moved[0][:, 0]).max() < 8:  # zoomed out: a padded border
            padded = True
            assert torch.isclose(out[0, :, -1, -1], image[0].mean(dim=(1, 2)), atol=1e-6).all() \
                or torch.isclose(out[0, :, 0, 0], image[0].mean(dim=(1, 2)), atol=1e-6).all()
    assert dropped and padded


def test_colour_shift_changes_channels_apart_and_leaves_boxes():
    image = torch.full((1, 3, 8, 8), 0.5)
    boxes = [torch.tensor([[1., 1., 5., 5.]])]
    out, moved, _ = augment_with_boxes(image, boxes, torch.Generator().manual_seed(0),
                                       color=0.2)
    torch.testing.assert_close(moved[0], boxes[0])
    per_channel = out[0].mean(dim=(1, 2))
    assert torch.allclose(out[0], per_channel[:, None, None].expand_as(out[0]))  # uniform shift
    assert len(set(per_channel.tolist())) == 3  # each channel its own gain and offset


def test_zoom_and_colour_are_differentiable():
    image = torch.rand(2, 3, 16, 16, requires_grad=True)
    boxes = [torch.tensor([[2., 2., 8., 8.]]), torch.tensor([[4., 4., 12., 12.]])]
    out, _, _ = augment_with_boxes(image, boxes, torch.Generator().manual_seed(1), zoom=0.3,
                                   color=0.1)
    out.sum().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0
