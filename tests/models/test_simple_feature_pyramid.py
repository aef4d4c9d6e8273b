"""SimpleFeaturePyramid: ViTDet levels from one map, GroupNorm, extra levels, config checks at
build time, the backbone's channel count at the first forward."""
import pytest
import torch
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from torch import nn

from mmdfkd.models.backbones import TimmViT
from mmdfkd.models.necks import SimpleFeaturePyramid

register_all_modules()


@pytest.mark.parametrize('scale_factors,num_outs,add_extra_convs,sizes', [
    ((4.0, 2.0, 1.0, 0.5), None, False, [(56, 84), (28, 42), (14, 21), (7, 11)]),
    ((4.0, 2.0, 1.0, 0.5), 5, False, [(56, 84), (28, 42), (14, 21), (7, 11), (4, 6)]),
    ((2.0, 1.0, 0.5), 5, True, [(28, 42), (14, 21), (7, 11), (4, 6), (2, 3)]),
])
def test_levels_and_strides(scale_factors, num_outs, add_extra_convs, sizes):
    neck = MODELS.build(dict(type='SimpleFeaturePyramid', in_channels=192, out_channels=64,
                             scale_factors=scale_factors, num_outs=num_outs,
                             add_extra_convs=add_extra_convs))
    x = torch.randn(2, 192, 14, 21, requires_grad=True)  # stride 16 map of a 224x336 image
    outs = neck([x])
    assert [tuple(o.shape[-2:]) for o in outs] == sizes
    assert all(o.shape[:2] == (2, 64) for o in outs)
    sum(o.mean() for o in outs).backward()
    assert x.grad.abs().sum() > 0
    assert len(neck.extra_convs) == (len(sizes) - len(scale_factors) if add_extra_convs else 0)
    if num_outs and not add_extra_convs:  # ViTDet's P6: max pooling with kernel 1, stride 2
        torch.testing.assert_close(outs[-1], outs[-2][..., ::2, ::2])


def test_group_norm_by_default_so_outputs_do_not_depend_on_the_batch():
    neck = SimpleFeaturePyramid(in_channels=192, out_channels=64).train()
    norms = [m for m in neck.modules() if isinstance(m, nn.modules.batchnorm._NormBase)
             or isinstance(m, nn.GroupNorm)]
    assert norms and all(isinstance(m, nn.GroupNorm) for m in norms)
    x = torch.randn(3, 192, 6, 8)
    alone, batched = neck([x[:1]]), neck([x])
    for a, b in zip(alone, batched):
        torch.testing.assert_close(a, b[:1])


def test_invalid_configs_are_explained():
    with pytest.raises(ValueError, match='scale_factors'):
        SimpleFeaturePyramid(192, scale_factors=(1.0, 2.0))
    with pytest.raises(ValueError, match='scale_factors'):
        SimpleFeaturePyramid(192, scale_factors=(3.0,))
    with pytest.raises(ValueError, match='num_outs=2'):
        SimpleFeaturePyramid(192, num_outs=2)
    with pytest.raises(ValueError, match='num_groups=32 cannot normalise 48'):
        SimpleFeaturePyramid(192, out_channels=48)
    neck = SimpleFeaturePyramid(192, out_channels=64)
    with pytest.raises(ValueError, match='one backbone map, got 2'):
        neck([torch.randn(1, 192, 4, 4)] * 2)


def test_in_channels_must_match_the_backbone_map():
    backbone = TimmViT(out_indices=(0,)).eval()  # DeiT-Tiny: 192 channels
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        features = backbone(x)
        outs = SimpleFeaturePyramid(in_channels=192, out_channels=64)(features)  # matches
        assert outs[0].shape == (1, 64, 16, 16)
        neck = SimpleFeaturePyramid(in_channels=384, out_channels=64)
        with pytest.raises(ValueError) as info:
            neck(features)
    assert str(info.value) == (
        "SimpleFeaturePyramid in_channels=384 does not match the 192 channels of the backbone "
        "map; set the neck's in_channels=192, the backbone's embed dim")
