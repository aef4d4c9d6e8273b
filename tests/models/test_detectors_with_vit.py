"""The ViT student (TimmViT + SimpleFeaturePyramid) inside mmdet's RetinaNet, FCOS, ATSS, GFL and
Faster R-CNN: a train step and predictions at several input sizes on the CPU."""
import copy
import glob
import os.path as osp

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.utils import register_all_modules
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData

from conftest import REPO_ROOT
from mmdfkd.utils import load_config

register_all_modules()

CHANNELS = 64
NUM_CLASSES = 3
# DeiT-Tiny cut to 4 blocks, windowed except block 1, so the tests stay fast on a CPU.
BACKBONE = dict(type='TimmViT', model_name='deit_tiny_patch16_224', out_indices=(3,),
                window_size=4, global_attn_indices=(1,))
# Strides 8-128, the levels of the mmdet one-stage configs (P3-P7).
P3_P7 = dict(type='SimpleFeaturePyramid', in_channels=192, out_channels=CHANNELS,
             scale_factors=(2.0, 1.0, 0.5), num_outs=5, add_extra_convs=True)
# Strides 4-64, the levels of Faster R-CNN (P2-P6).
P2_P6 = dict(type='SimpleFeaturePyramid', in_channels=192, out_channels=CHANNELS,
             scale_factors=(4.0, 2.0, 1.0, 0.5), num_outs=5)
ONE_STAGE_HEAD = dict(bbox_head=dict(in_channels=CHANNELS, feat_channels=CHANNELS,
                                     stacked_convs=1, num_classes=NUM_CLASSES))
DETECTORS = {
    'retinanet': ('mmdet::retinanet/retinanet_r50_fpn_1x_coco.py', P3_P7, ONE_STAGE_HEAD),
    'fcos': ('mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py', P3_P7, ONE_STAGE_HEAD),
    'atss': ('mmdet::atss/atss_r50_fpn_1x_coco.py', P3_P7, ONE_STAGE_HEAD),
    'gfl': ('mmdet::gfl/gfl_r50_fpn_1x_coco.py', P3_P7, ONE_STAGE_HEAD),
    'faster_rcnn': ('mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py', P2_P6, dict(
        rpn_head=dict(in_channels=CHANNELS, feat_channels=CHANNELS),
        roi_head=dict(bbox_roi_extractor=dict(out_channels=CHANNELS),
                      bbox_head=dict(in_channels=CHANNELS, fc_out_channels=128,
                                     num_classes=NUM_CLASSES)))),
}


def _merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and key in out else value
    return out


def student_config(detector: str, neck: dict = None) -> ConfigDict:
    """The detector's mmdet model config with the ViT student as backbone and neck."""
    path, default_neck, heads = DETECTORS[detector]
    model = load_config(path).model.to_dict()
    model.update(backbone=dict(BACKBONE), neck=dict(neck or default_neck))
    return ConfigDict(_merge(model, heads))


def make_batch(sizes, seed=0):
    """Random uint8 images of the given (H, W) sizes, each with two boxes."""
    generator = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for h, w in sizes:
        inputs.append(torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=generator))
        sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                             scale_factor=(1., 1.)))
        sample.gt_instances = InstanceData(
            bboxes=torch.tensor([[10., 20., 0.6 * w, 0.7 * h], [0.5 * w, 0.4 * h, w - 5., h - 3.]]),
            labels=torch.tensor([0, 2]))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


@pytest.mark.parametrize('detector', sorted(DETECTORS))
def test_train_step_and_predict(detector):
    torch.manual_seed(0)
    model = MODELS.build(student_config(detector))

    model.train()
    data = model.data_preprocessor(make_batch([(333, 500), (224, 224)]), True)
    loss, log_vars = model.parse_losses(model(**data, mode='loss'))
    loss.backward()
    assert torch.isfinite(loss), log_vars
    patch_grad = model.backbone.vit.patch_embed.proj.weight.grad
    assert patch_grad is not None and torch.isfinite(patch_grad).all()
    assert patch_grad.abs().sum() > 0

    model.eval()
    for h, w in [(224, 224), (333, 500), (512, 640)]:
        with torch.no_grad():
            (result,) = model(**model.data_preprocessor(make_batch([(h, w)]), False),
                              mode='predict')
        boxes = result.pred_instances.bboxes
        assert boxes.ndim == 2 and boxes.shape[1] == 4 and torch.isfinite(boxes).all()
        assert len(result.pred_instances.scores) == len(boxes)
        if len(boxes):
            assert boxes[:, 0::2].max() <= w and boxes[:, 1::2].max() <= h


def test_neck_in_channels_mismatch_fails_at_the_first_forward():
    model = MODELS.build(student_config('retinanet', neck=dict(P3_P7, in_channels=384))).eval()
    with torch.no_grad(), pytest.raises(ValueError, match=r"in_channels=384 does not match the "
                                        r"192 channels .* set the neck's in_channels=192"):
        model(**model.data_preprocessor(make_batch([(128, 128)]), False), mode='predict')


@pytest.mark.parametrize('config', sorted(glob.glob(osp.join(REPO_ROOT, 'configs', 'students',
                                                             '*.py'))))
def test_student_configs_build_and_predict(config):
    model = MODELS.build(load_config(config).model).eval()
    assert type(model.backbone).__name__ == 'TimmViT'
    with torch.no_grad():
        (result,) = model(**model.data_preprocessor(make_batch([(200, 300)]), False),
                          mode='predict')
    assert result.pred_instances.bboxes.shape[1] == 4
