"""Small teacher/student configs and checkpoints for the distiller tests."""
import copy

import torch
from mmdet.structures import DetDataSample
from mmengine.runner import save_checkpoint
from mmengine.structures import InstanceData

from conftest import TEACHER_CONFIG
from mmdfkd.utils import load_config

NUM_CLASSES = 6


def teacher_model_cfg() -> dict:
    """The demo teacher (RetinaNet-R18, BN everywhere, 128-channel FPN)."""
    return load_config(TEACHER_CONFIG).model.to_dict()


def student_model_cfg(kind: str = 'retinanet') -> dict:
    """A smaller ResNet-18 student: 64-channel FPN; RetinaNet (same anchors as the teacher)
    or FCOS (anchor-free)."""
    cfg = teacher_model_cfg()
    cfg['neck']['out_channels'] = 64
    cfg['bbox_head'].update(in_channels=64, feat_channels=64)
    if kind == 'fcos':
        cfg['bbox_head'] = dict(
            type='FCOSHead', num_classes=NUM_CLASSES, in_channels=64, feat_channels=64,
            stacked_convs=1, strides=[8, 16, 32, 64, 128],
            loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                          loss_weight=1.0),
            loss_bbox=dict(type='IoULoss', loss_weight=1.0),
            loss_centerness=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0))
        cfg['test_cfg'] = dict(nms_pre=100, min_bbox_size=0, score_thr=0.05,
                               nms=dict(type='nms', iou_threshold=0.5), max_per_img=50)
        cfg['type'] = 'FCOS'
    return cfg


def save_teacher_checkpoint(path: str, seed: int = 0) -> str:
    """Saves a randomly initialized teacher as an mmengine checkpoint."""
    from mmdet.registry import MODELS
    torch.manual_seed(seed)
    teacher = MODELS.build(copy.deepcopy(teacher_model_cfg()))
    save_checkpoint(dict(state_dict=teacher.state_dict(), meta=dict(seed=seed)), path)
    return path


def data_samples(num: int = 2, size: int = 128) -> list:
    """``num`` data samples of ``size`` x ``size`` images, each with one class-2 target box."""
    samples = []
    for _ in range(num):
        sample = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size),
                                             pad_shape=(size, size), scale_factor=(1., 1.),
                                             batch_input_shape=(size, size)))
        sample.gt_instances = InstanceData(bboxes=torch.tensor([[10., 12., 70., 90.]]),
                                           labels=torch.tensor([2]))
        samples.append(sample)
    return samples
