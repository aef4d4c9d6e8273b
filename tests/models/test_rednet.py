"""RedNet: strides and channels, the published depth table and sizes, freezing, norm_eval,
initialisation, registry, and a RetinaNet loss step."""
import copy

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.utils import register_all_modules
from mmengine.structures import InstanceData
from torch.nn.modules.batchnorm import _BatchNorm

import mmdfkd
from mmdfkd.models.backbones import Involution, RedNet
from mmdfkd.utils import load_config

TINY = dict(depth=26, base_channels=16, stem_channels=32)
BLOCKS = {26: (1, 2, 4, 1), 38: (2, 3, 5, 2), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3),
          152: (3, 8, 36, 3)}
# Published ImageNet classifiers (github.com/d-li14/involution README), in millions of
# parameters, including the 2048 x 1000 linear classifier.
PUBLISHED_PARAMS = {26: 9.23, 38: 12.39, 50: 15.54, 101: 25.65, 152: 33.99}

register_all_modules()


@pytest.mark.parametrize('base_channels,stem_channels', [(16, 32), (32, 64)])
@pytest.mark.parametrize('size,expected', [
    ((64, 96), [(16, 24), (8, 12), (4, 6), (2, 3)]),
    ((65, 97), [(17, 25), (9, 13), (5, 7), (3, 4)]),  # odd sizes round up at every stride
])
def test_output_strides_and_channels(base_channels, stem_channels, size, expected):
    backbone = RedNet(26, base_channels=base_channels, stem_channels=stem_channels)
    backbone.eval()  # mmdet's ResNet.train returns None, so no chaining
    with torch.no_grad():
        outs = backbone(torch.randn(2, 3, *size))
    channels = [c * base_channels // 64 for c in (256, 512, 1024, 2048)]
    assert [tuple(o.shape) for o in outs] == [(2, c, *hw) for c, hw in zip(channels, expected)]


def test_out_indices_select_stages():
    backbone = RedNet(**TINY, out_indices=(1, 3))
    backbone.eval()
    with torch.no_grad():
        outs = backbone(torch.randn(1, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(1, 128, 8, 8), (1, 512, 2, 2)]


@pytest.mark.parametrize('depth', sorted(BLOCKS))
def test_depth_table_and_involution_placement(depth):
    backbone = RedNet(depth, base_channels=16, stem_channels=32)
    blocks = [list(getattr(backbone, f'layer{i + 1}')) for i in range(4)]
    assert tuple(len(stage) for stage in blocks) == BLOCKS[depth]
    assert 3 * sum(BLOCKS[depth]) + 2 == depth  # three layers a block, stem and classifier
    for i, stage in enumerate(blocks):
        for j, block in enumerate(stage):
            assert isinstance(block.conv2, Involution)
            assert block.conv2.channels == 16 * 2**i
            assert block.conv2.stride == (2 if i > 0 and j == 0 else 1)
            assert block.conv2.kernel_size == 7
    stem_involutions = [m for m in backbone.stem if isinstance(m, Involution)]
    assert [(m.channels, m.kernel_size, m.stride) for m in stem_involutions] == [(16, 7, 1)]


@pytest.mark.parametrize('depth', sorted(PUBLISHED_PARAMS))
def test_published_widths_give_published_parameter_counts(depth):
    backbone = RedNet(depth)
    classifier = 2048 * 1000 + 1000
    total = sum(p.numel() for p in backbone.parameters()) + classifier
    assert round(total / 1e6, 2) == PUBLISHED_PARAMS[depth]


def test_parameter_names_follow_the_published_code():
    keys = RedNet(**TINY).state_dict().keys()
    published = ['stem.0.conv.weight', 'stem.0.bn.running_var', 'stem.1.conv1.conv.weight',
                 'stem.1.conv1.bn.weight', 'stem.1.conv2.conv.bias', 'stem.2.weight',
                 'stem.4.conv.weight', 'stem.4.bn.bias', 'layer1.0.conv1.weight',
                 'layer1.0.bn1.weight', 'layer1.0.conv2.conv1.conv.weight',
                 'layer1.0.conv2.conv1.bn.running_mean', 'layer1.0.conv2.conv2.conv.weight',
                 'layer1.0.conv2.conv2.conv.bias', 'layer1.0.bn2.weight', 'layer1.0.conv3.weight',
                 'layer1.0.bn3.weight', 'layer1.0.downsample.0.weight',
                 'layer1.0.downsample.1.weight', 'layer4.0.conv2.conv2.conv.weight']
    assert set(published) <= set(keys)


@pytest.mark.parametrize('kwargs,match', [
    (dict(depth=18), r'depth must be one of \(26, 38, 50, 101, 152\), got 18'),
    (dict(TINY, base_channels=24), r'channels=24 is not divisible by group_channels=16.*change '
                                   r'stem_channels, base_channels or involution_cfg'),
    (dict(TINY, stem_channels=16), r'channels=8 is not divisible .* stem_channels // 2 = 8'),
    (dict(TINY, involution_cfg=dict(kernel_size=4)), r'kernel_size must be odd'),
    (dict(TINY, out_indices=(4,)), r'out_indices=\(4,\) must be .* stages 0..3'),
    (dict(TINY, frozen_stages=5), r'frozen_stages=5 must be -1 .* to num_stages=4'),
    (dict(TINY, strides=(1, 2, 2)), r'one stride per stage \(num_stages=4\)'),
])
def test_bad_arguments_say_what_to_change(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RedNet(**kwargs)


def test_involution_cfg_reaches_every_involution():
    backbone = RedNet(**TINY, involution_cfg=dict(kernel_size=3, group_channels=8))
    involutions = [m for m in backbone.modules() if isinstance(m, Involution)]
    assert len(involutions) == 1 + sum(BLOCKS[26])
    assert all(m.kernel_size == 3 and m.group_channels == 8 for m in involutions)
    # The kernel generators' norm: the backbone's unless involution_cfg names one.
    assert all(isinstance(m.conv1.norm, _BatchNorm) for m in involutions)
    backbone = RedNet(**TINY, involution_cfg=dict(norm_cfg=dict(type='GN', num_groups=1)))
    involutions = [m for m in backbone.modules() if isinstance(m, Involution)]
    assert all(isinstance(m.conv1.norm, torch.nn.GroupNorm) for m in involutions)
    assert sum(isinstance(m, _BatchNorm) for m in backbone.modules()) == 1 + 2 + 3 * 8 + 4


def test_frozen_stages_freeze_stem_and_first_stages():
    backbone = RedNet(**TINY, frozen_stages=2)
    backbone.train()
    frozen = [backbone.stem, backbone.layer1, backbone.layer2]
    trained = [backbone.layer3, backbone.layer4]
    assert all(not p.requires_grad for m in frozen for p in m.parameters())
    assert all(p.requires_grad for m in trained for p in m.parameters())
    assert all(not m.training for part in frozen for m in part.modules())
    assert all(m.training for part in trained for m in part.modules())

    frozen_bn = backbone.stem[1].conv1.bn  # inside the stem's involution
    trained_bn = backbone.layer3[0].bn2
    before = frozen_bn.running_mean.clone(), trained_bn.running_mean.clone()
    backbone(torch.randn(2, 3, 64, 64))
    torch.testing.assert_close(frozen_bn.running_mean, before[0])
    assert not torch.allclose(trained_bn.running_mean, before[1])


@pytest.mark.parametrize('norm_eval', [True, False])
def test_norm_eval_keeps_every_batchnorm_in_eval_mode(norm_eval):
    backbone = RedNet(**TINY, norm_eval=norm_eval)
    backbone.train()
    norms = [m for m in backbone.modules() if isinstance(m, _BatchNorm)]
    # Per block bn1..bn3 and the kernel generator's; the stem's three and its involution's;
    # one in each stage's downsample path.
    assert len(norms) == 4 * sum(BLOCKS[26]) + 4 + 4
    assert backbone.training
    assert all(m.training != norm_eval for m in norms)
    before = [m.running_mean.clone() for m in norms]
    backbone(torch.randn(2, 3, 64, 64))
    changed = [not torch.equal(m.running_mean, b) for m, b in zip(norms, before)]
    assert not any(changed) if norm_eval else all(changed)


@pytest.mark.parametrize('zero_init_residual', [True, False])
def test_default_init_zeroes_last_norm_of_each_block(zero_init_residual):
    backbone = RedNet(**TINY, zero_init_residual=zero_init_residual)
    blocks = [b for i in range(4) for b in getattr(backbone, f'layer{i + 1}')]
    for block in blocks:
        block.norm3.weight.data.fill_(0.5)
    backbone.init_weights()
    expected = 0. if zero_init_residual else 1.
    for block in blocks:
        assert torch.all(block.norm3.weight == expected)
        assert torch.all(block.norm2.weight == 1.)


def test_gradient_checkpointing_gives_the_same_output_and_gradients():
    torch.manual_seed(0)
    plain = RedNet(**TINY)
    checkpointed = RedNet(**TINY, with_cp=True)
    checkpointed.load_state_dict(plain.state_dict())
    results = []
    for backbone in (plain, checkpointed):
        x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1),
                        requires_grad=True)
        out = backbone(x)[-1]
        out.square().mean().backward()
        results.append((out.detach(), x.grad, backbone.layer2[0].conv2.conv2.conv.weight.grad))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b)


def test_builds_through_the_mmdet_registry_after_import():
    assert 'RedNet' in mmdfkd.models.__all__
    assert 'Involution' not in mmdfkd.models.backbones.__all__  # a building block
    backbone = MODELS.build(dict(type='RedNet', **TINY, out_indices=(3,)))
    assert isinstance(backbone, RedNet)
    backbone.eval()
    with torch.no_grad():
        (out,) = backbone(torch.randn(1, 3, 32, 32))
    assert out.shape == (1, 512, 1, 1)


def test_retinanet_with_rednet_gives_finite_losses_and_gradients():
    torch.manual_seed(0)
    model_cfg = copy.deepcopy(load_config('mmdet::retinanet/retinanet_r50_fpn_1x_coco.py').model)
    model_cfg.backbone = dict(type='RedNet', **TINY)
    model_cfg.neck.update(in_channels=[64, 128, 256, 512], out_channels=32)
    model_cfg.bbox_head.update(num_classes=2, in_channels=32, feat_channels=32, stacked_convs=1)
    model = MODELS.build(model_cfg)
    model.init_weights()
    model.train()

    sample = DetDataSample(metainfo=dict(img_shape=(64, 64), ori_shape=(64, 64),
                                         scale_factor=(1., 1.)))
    sample.gt_instances = InstanceData(bboxes=torch.tensor([[8., 12., 40., 50.]]),
                                       labels=torch.tensor([1]))
    image = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)
    data = model.data_preprocessor(dict(inputs=[image], data_samples=[sample]), True)
    losses = model(**data, mode='loss')
    loss, log_vars = model.parse_losses(losses)
    assert {'loss_cls', 'loss_bbox'} <= set(log_vars)
    assert all(torch.isfinite(torch.as_tensor(v)) for v in log_vars.values()), log_vars
    loss.backward()
    # The blocks' residual branches start at zero (zero_init_residual), so their involutions get
    # no gradient yet; the stem's does.
    for param in (model.backbone.stem[1].conv2.conv.weight, model.backbone.layer1[0].bn3.weight):
        assert param.grad is not None and torch.isfinite(param.grad).all()
        assert param.grad.abs().sum() > 0
