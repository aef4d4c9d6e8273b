"""Small teachers and targets for the synthesizer tests."""
from types import SimpleNamespace

import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample

from conftest import TEACHER_CONFIG
from mmdfkd.models.synthesis import Targets
from mmdfkd.utils import load_config

CLASSES = ('rectangle', 'ellipse', 'triangle', 'cross', 'star', 'ring')


def teacher(norm: str = 'BN', seed: int = 0):
    """The demo teacher (RetinaNet-R18), randomly initialized, frozen, in eval mode; with
    ``norm='GN'`` GroupNorm everywhere (no BN statistics)."""
    cfg = load_config(TEACHER_CONFIG).model
    if norm == 'GN':
        gn = dict(type='GN', num_groups=16, requires_grad=True)
        cfg.backbone.norm_cfg = gn
        cfg.neck.norm_cfg = gn
        cfg.bbox_head.norm_cfg = gn
    torch.manual_seed(seed)
    model = MODELS.build(cfg).eval()
    model.requires_grad_(False)
    return model


def targets(size: int = 128) -> Targets:
    """Two images of ``size`` px with one box each."""
    scale = size / 128
    boxes = [torch.tensor([[10., 12., 60., 50.]]) * scale,
             torch.tensor([[30., 30., 90., 100.]]) * scale]
    meta = [dict(img_id=i, img_shape=(size, size), ori_shape=(size, size),
                 scale_factor=(1., 1.)) for i in range(2)]
    return Targets(boxes, [torch.tensor([1]), torch.tensor([4])], meta)


def samples(dataset, indices):
    """The data samples of dataset items, as the loader batches them."""
    return [dataset[i]['data_samples'] for i in indices]


def meta_only(samples_):
    """The samples without their targets (what ``draw_targets=False`` items carry)."""
    return [DetDataSample(metainfo=s.metainfo) for s in samples_]


def models(teacher_, student=None):
    """What ``build_synthesizer`` reads of a distiller."""
    return SimpleNamespace(teachers=[teacher_], teacher_weights=[1.0], student=student)
