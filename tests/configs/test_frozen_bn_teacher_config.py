"""The frozen-BN demo teacher (configs/demo/retinanet_r18_frozen_bn_shapes.py): mmdet's stock
RetinaNet recipe (pretrained backbone with frozen BN, no norm in FPN and head) with the demo
teacher's classes, head shapes and anchors, and its data-free distiller config."""
import inspect
import os.path as osp

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.runner import Runner
from torch.nn.modules.batchnorm import _BatchNorm

from conftest import REPO_ROOT, TEACHER_CONFIG, shrink_config
from demo.proxy_classification import ProxyClassifier, save_backbone_checkpoint
from mmdfkd.models.distillers.teacher_loader import resolve_teacher_config
from mmdfkd.models.synthesis import InversionLoss
from mmdfkd.models.synthesis.bn_statistics import describe_bn_prior
from mmdfkd.utils import load_config

DEMO = osp.join(REPO_ROOT, 'configs', 'demo')
FROZEN_BN_TEACHER = osp.join(DEMO, 'retinanet_r18_frozen_bn_shapes.py')
FROZEN_BN_DFKD = osp.join(DEMO, 'dfkd_frozen_bn_deit_tiny_shapes.py')
NORMS = (_BatchNorm, torch.nn.GroupNorm, torch.nn.LayerNorm)


@pytest.fixture(scope='module')
def detectors():
    """The frozen-BN teacher and the demo teacher, built (nothing loaded), in train mode."""
    register_all_modules()
    torch.manual_seed(0)
    built = [MODELS.build(load_config(path).model)
             for path in (FROZEN_BN_TEACHER, TEACHER_CONFIG)]
    for detector in built:
        detector.train()
    return built


def test_backbone_bn_stays_in_eval_mode_and_stem_is_frozen(detectors):
    frozen_bn, _ = detectors
    bns = [m for m in frozen_bn.backbone.modules() if isinstance(m, _BatchNorm)]
    assert bns and not any(m.training for m in bns)  # norm_eval=True inside train()
    for name, param in frozen_bn.backbone.named_parameters():  # frozen_stages=1
        assert param.requires_grad is not name.startswith(('conv1.', 'bn1.', 'layer1.')), name
    status, _ = describe_bn_prior(frozen_bn)
    assert status == 'frozen'


def test_neck_and_head_have_no_norm(detectors):
    frozen_bn, _ = detectors
    for part in (frozen_bn.neck, frozen_bn.bbox_head):
        assert not [name for name, m in part.named_modules() if isinstance(m, NORMS)]


def test_head_and_levels_match_the_demo_teacher(detectors):
    """Same classes, head convolutions, anchors and FPN levels: the demo student's
    distillation terms apply to either teacher."""
    frozen_bn, demo = detectors

    def conv_shapes(head):
        return {name: tuple(p.shape) for name, p in head.named_parameters()
                if name.endswith('conv.weight') or name.startswith(('retina_cls', 'retina_reg'))}

    assert conv_shapes(frozen_bn.bbox_head) == conv_shapes(demo.bbox_head)
    assert frozen_bn.bbox_head.num_classes == demo.bbox_head.num_classes
    assert (frozen_bn.bbox_head.prior_generator.strides
            == demo.bbox_head.prior_generator.strides)
    assert (frozen_bn.bbox_head.num_base_priors == demo.bbox_head.num_base_priors)
    images = torch.zeros(1, 3, 128, 128)
    shapes = [[tuple(f.shape) for f in d.extract_feat(images)] for d in (frozen_bn, demo)]
    assert shapes[0] == shapes[1]


def test_the_distillers_teacher_is_the_frozen_bn_teacher():
    cfg = load_config(FROZEN_BN_DFKD)
    assert resolve_teacher_config(cfg.model.teachers[0].config) == \
        load_config(FROZEN_BN_TEACHER).model
    # Its synthesis is the demo's inversion, whose loss leaves the BN prior off for frozen BN.
    assert cfg.custom_hooks == load_config(osp.join(DEMO, 'dfkd_deit_tiny_shapes.py')).custom_hooks
    assert 'frozen_bn_prior' not in cfg.custom_hooks[0].synthesizer.loss
    assert inspect.signature(InversionLoss).parameters['frozen_bn_prior'].default is False


def test_training_keeps_the_pretrained_bn_statistics(tmp_path, tiny_shapes_root):
    """Two iterations with the mmengine Runner from a proxy backbone checkpoint: the backbone's
    BN running statistics and its frozen stem are still the checkpoint's; its later stages
    learn."""
    torch.manual_seed(0)
    backbone = str(tmp_path / 'backbone.pth')
    save_backbone_checkpoint(ProxyClassifier(), backbone)
    cfg = shrink_config(load_config(FROZEN_BN_TEACHER), tiny_shapes_root, max_iters=2,
                        ckpt_interval=2)
    cfg.model.backbone.init_cfg.checkpoint = backbone
    cfg.work_dir = str(tmp_path / 'work')
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    runner = Runner.from_cfg(cfg)
    runner.train()
    pretrained = torch.load(backbone, weights_only=True)['state_dict']
    trained = runner.model.backbone.state_dict()
    for key, value in pretrained.items():
        if 'running_' in key or key.startswith(('conv1.', 'bn1.', 'layer1.')):
            assert torch.equal(trained[key], value), key
    assert not torch.equal(trained['layer4.1.conv2.weight'], pretrained['layer4.1.conv2.weight'])
