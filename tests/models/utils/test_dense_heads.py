"""Comparing two dense heads anchor by anchor: which pairs fit, and the row order of
flatten_levels."""
import copy

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules

from conftest import TEACHER_CONFIG
from mmdfkd.models.utils import dense_pair_problems, flatten_levels, head_outputs
from mmdfkd.utils import load_config

register_all_modules(init_default_scope=True)


def _head(**changes):
    cfg = copy.deepcopy(load_config(TEACHER_CONFIG).model.bbox_head.to_dict())
    cfg.update(in_channels=8, feat_channels=8, stacked_convs=1)
    for key, value in changes.items():
        if key == 'anchor_generator':
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return MODELS.build(cfg)


def test_flatten_levels_orders_rows_by_image_level_position_and_anchor():
    # Two images, two anchors of 1 channel; level 0 is 1x2, level 1 is 1x1. Value = a code of
    # (image, level, position, anchor).
    level0 = torch.tensor([[[[0., 2.]], [[1., 3.]]], [[[10., 12.]], [[11., 13.]]]])  # (2,2,1,2)
    level1 = torch.tensor([[[[4.]], [[5.]]], [[[14.]], [[15.]]]])  # (2, 2, 1, 1)
    rows = flatten_levels([level0, level1], channels=1)
    assert rows.squeeze(1).tolist() == [0., 1., 2., 3., 4., 5., 10., 11., 12., 13., 14., 15.]
    boxes = flatten_levels([torch.arange(8.).reshape(1, 8, 1, 1)], channels=4)
    assert boxes.tolist() == [[0., 1., 2., 3.], [4., 5., 6., 7.]]  # anchor-major channels


def test_dense_pair_problems_names_each_difference():
    assert dense_pair_problems(_head(), _head()) == []
    assert dense_pair_problems(_head(), _head(num_classes=3)) == [
        'class channels differ (6 vs 3)']
    assert dense_pair_problems(_head(), _head(anchor_generator=dict(strides=[8, 16, 64]))) == [
        'strides differ ([(8, 8), (16, 16), (32, 32)] vs [(8, 8), (16, 16), (64, 64)])']
    assert dense_pair_problems(_head(), _head(anchor_generator=dict(octave_base_scale=4))) == [
        'anchors differ (anchor_generator settings)']
    softmax = _head(loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False))
    assert 'one head uses sigmoid and the other softmax scores' in dense_pair_problems(
        _head(), softmax)
    fcos = MODELS.build(dict(type='FCOSHead', num_classes=6, in_channels=8, feat_channels=8,
                             stacked_convs=1, norm_cfg=None))
    assert dense_pair_problems(_head(), fcos) == [
        'both heads must be anchor-based dense heads (got RetinaHead and FCOSHead)']


def test_head_outputs_refuses_what_is_not_a_dense_head_output():
    cls_scores, bbox_preds = head_outputs(([torch.zeros(1)], [torch.ones(1)]), 'bbox_head')
    assert len(cls_scores) == len(bbox_preds) == 1
    with pytest.raises(TypeError, match="Source 'neck' is not a dense head output"):
        head_outputs(torch.zeros(1, 2, 3, 3), 'neck')
