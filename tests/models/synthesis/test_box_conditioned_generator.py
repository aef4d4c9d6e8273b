"""Box-conditioned generator: output shape and range, hand-computed layouts, gradients,
dependence on layout and noise, argument validation, registry build."""
import re

import pytest
import torch

from mmdfkd.models.synthesis.box_conditioned_generator import BoxConditionedGenerator


def _small(**kwargs) -> BoxConditionedGenerator:
    cfg = dict(num_classes=3, img_size=(64, 96), noise_dim=8, base_channels=32,
               num_upsamples=3)
    cfg.update(kwargs)
    torch.manual_seed(0)
    return BoxConditionedGenerator(**cfg)


def _two_images():
    boxes = [torch.tensor([[8., 8., 40., 40.], [50., 20., 90., 60.]]), torch.zeros(0, 4)]
    labels = [torch.tensor([0, 2]), torch.zeros(0, dtype=torch.long)]
    return boxes, labels


def test_output_shape_and_range_for_non_square_size():
    gen = _small()
    boxes, labels = _two_images()
    out = gen(gen.sample_noise(2), boxes, labels)
    assert out.shape == (2, 3, 64, 96)
    assert out.min() >= 0 and out.max() <= 1


def test_rasterize_hand_computed():
    gen = _small()
    # (64, 96) -> (8, 12) scales by 1/8: x 16..32 -> cols 2, 3; y 8..24 -> rows 1, 2.
    layout = gen.rasterize([torch.tensor([[16., 8., 32., 24.]])], [torch.tensor([2])], (8, 12))
    expected = torch.zeros(1, 3, 8, 12)
    expected[0, 2, 1:3, 2:4] = 1
    assert torch.equal(layout, expected)


def test_rasterize_marks_partly_covered_cells_and_keeps_tiny_boxes():
    gen = _small()
    boxes = [torch.tensor([[4., 4., 12., 12.], [1., 1., 2., 2.], [95., 63., 95., 63.]])]
    # x and y 0.5..1.5 touch cells 0 and 1; the 1-pixel box is 1/8 of a cell; the
    # zero-size box on the far corner still gets the last cell.
    layout = gen.rasterize(boxes, [torch.tensor([0, 1, 1])], (8, 12))
    expected = torch.zeros(1, 3, 8, 12)
    expected[0, 0, 0:2, 0:2] = 1
    expected[0, 1, 0, 0] = 1
    expected[0, 1, 7, 11] = 1
    assert torch.equal(layout, expected)


def test_rasterize_overlapping_boxes_of_one_class_stay_binary():
    gen = _small()
    boxes = [torch.tensor([[0., 0., 16., 16.], [8., 8., 24., 24.]])]
    layout = gen.rasterize(boxes, [torch.tensor([1, 1])], (64, 96))
    assert set(layout.unique().tolist()) == {0., 1.}
    assert layout[0, 1].sum() == 16 * 16 * 2 - 8 * 8


def test_gradient_reaches_every_parameter():
    gen = _small()
    boxes, labels = _two_images()
    out = gen(gen.sample_noise(2), boxes, labels)
    ((out - 0.25)**2).mean().backward()
    for name, param in gen.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_output_depends_on_layout_and_noise():
    gen = _small().eval()  # running BN statistics: each image depends only on its inputs
    noise = gen.sample_noise(1, torch.Generator().manual_seed(1))
    labels = [torch.tensor([1])]
    box_a = [torch.tensor([[0., 0., 32., 32.]])]
    box_b = [torch.tensor([[56., 24., 96., 64.]])]
    with torch.no_grad():
        out_a = gen(noise, box_a, labels)
        out_b = gen(noise, box_b, labels)
        out_class = gen(noise, box_a, [torch.tensor([0])])
        out_noise = gen(gen.sample_noise(1, torch.Generator().manual_seed(2)), box_a, labels)
    assert (out_a - out_b).abs().max() > 1e-3
    assert (out_a - out_class).abs().max() > 1e-3
    assert (out_a - out_noise).abs().max() > 1e-3


def test_sample_noise_shape_and_reproducibility():
    gen = _small()
    a = gen.sample_noise(5, torch.Generator().manual_seed(3))
    b = gen.sample_noise(5, torch.Generator().manual_seed(3))
    assert a.shape == (5, 8)
    assert torch.equal(a, b)
    assert not torch.equal(a, gen.sample_noise(5, torch.Generator().manual_seed(4)))


@pytest.mark.parametrize('kwargs, shown', [
    (dict(num_classes=0), '0'),
    (dict(noise_dim=-4), '-4'),
    (dict(base_channels=1.5), '1.5'),
    (dict(num_upsamples=True), 'True'),
    (dict(img_size=(64, )), '(64,)'),
    (dict(img_size=(64, 0)), '0'),
    (dict(img_size=(60, 96)), '(60, 96)'),
])
def test_bad_constructor_args_raise_with_value(kwargs, shown):
    with pytest.raises(ValueError, match=re.escape(shown)):
        _small(**kwargs)


def test_bad_call_args_raise_with_value():
    gen = _small()
    boxes, labels = _two_images()
    with pytest.raises(ValueError, match=re.escape('(2, 5)')):
        gen(torch.zeros(2, 5), boxes, labels)
    with pytest.raises(ValueError, match='got 2 box tensors for 3'):
        gen(gen.sample_noise(3), boxes, labels)
    with pytest.raises(ValueError, match=re.escape('[0, 3)')):
        gen.rasterize([torch.tensor([[0., 0., 8., 8.]])], [torch.tensor([3])], (8, 12))
    with pytest.raises(ValueError, match=re.escape('(1, 5)')):
        gen.rasterize([torch.zeros(1, 5)], [torch.tensor([0])], (8, 12))
    with pytest.raises(ValueError, match='got 0'):
        gen.sample_noise(0)


def test_builds_from_registry():
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    gen = MODELS.build(dict(type='BoxConditionedGenerator', num_classes=3, img_size=(64, 64)))
    assert isinstance(gen, BoxConditionedGenerator)
    out = gen(gen.sample_noise(2), [torch.tensor([[0., 0., 8., 8.]])] * 2,
              [torch.tensor([1])] * 2)
    assert out.shape == (2, 3, 64, 64)
