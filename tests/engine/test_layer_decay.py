"""LayerDecayOptimWrapperConstructor: ViT learning rates decay with depth, built from a config."""
import os.path as osp

import pytest
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.optim import build_optim_wrapper
from torch import nn

import mmdfkd.engine  # noqa: F401  (registers the constructor)
from conftest import REPO_ROOT
from mmdfkd.models.backbones import TimmViT
from mmdfkd.utils import load_config

register_all_modules(init_default_scope=True)

BASE_LR, WD, RATE = 1e-3, 0.05, 0.5


class ToyDetector(nn.Module):

    def __init__(self, frozen_stages: int = -1) -> None:
        super().__init__()
        self.backbone = TimmViT(out_indices=(3,), frozen_stages=frozen_stages)  # 4 blocks
        self.neck = nn.Sequential(nn.Conv2d(192, 8, 1), nn.GroupNorm(2, 8))


def build(model: nn.Module, **paramwise_cfg):
    return build_optim_wrapper(model, dict(
        type='OptimWrapper',
        constructor='LayerDecayOptimWrapperConstructor',
        optimizer=dict(type='AdamW', lr=BASE_LR, weight_decay=WD),
        paramwise_cfg=paramwise_cfg))


def groups_by_name(model: nn.Module, optim_wrapper) -> dict:
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(p)]: group for group in optim_wrapper.optimizer.param_groups
            for p in group['params']}


def test_learning_rate_decays_with_depth_and_composes_with_paramwise_options():
    model = ToyDetector()
    groups = groups_by_name(model, build(
        model, layer_decay_rate=RATE, norm_decay_mult=0.,
        custom_keys={'pos_embed': dict(decay_mult=0.)}))
    assert len(groups) == len(list(model.parameters()))
    lr = {name: group['lr'] / BASE_LR for name, group in groups.items()}
    # 4 blocks: embeddings at depth 0, block i at depth i + 1, rate ** (4 + 1 - depth).
    assert lr['backbone.vit.pos_embed'] == pytest.approx(RATE**5)
    assert lr['backbone.vit.cls_token'] == pytest.approx(RATE**5)
    assert lr['backbone.vit.patch_embed.proj.weight'] == pytest.approx(RATE**5)
    assert lr['backbone.vit.blocks.0.attn.qkv.weight'] == pytest.approx(RATE**4)
    assert lr['backbone.vit.blocks.3.mlp.fc2.bias'] == pytest.approx(RATE)
    assert lr['neck.0.weight'] == pytest.approx(1.)
    assert lr['neck.1.weight'] == pytest.approx(1.)
    # mmengine's own options still apply: no decay on norms and on pos_embed.
    assert groups['backbone.vit.blocks.2.norm1.weight']['weight_decay'] == 0.
    assert groups['backbone.vit.pos_embed']['weight_decay'] == 0.
    assert groups['neck.1.weight']['weight_decay'] == 0.
    assert groups['backbone.vit.blocks.2.attn.proj.weight']['weight_decay'] == pytest.approx(WD)


def test_frozen_parameters_are_left_out():
    model = ToyDetector(frozen_stages=1)
    groups = groups_by_name(model, build(model, layer_decay_rate=RATE))
    assert 'backbone.vit.blocks.0.attn.qkv.weight' not in groups
    assert 'backbone.vit.patch_embed.proj.weight' not in groups
    assert groups['backbone.vit.blocks.1.attn.qkv.weight']['lr'] == pytest.approx(
        BASE_LR * RATE**3)


def test_config_errors_are_explained():
    with pytest.raises(ValueError, match='layer_decay_rate'):
        build(ToyDetector())
    with pytest.raises(ValueError, match='layer_decay_rate'):
        build(ToyDetector(), layer_decay_rate=1.5)
    with pytest.raises(ValueError, match='found no TimmViT in Sequential'):
        build(nn.Sequential(nn.Linear(2, 2)), layer_decay_rate=RATE)


def test_student_config_optim_wrapper_builds():
    cfg = load_config(osp.join(REPO_ROOT, 'configs', 'students', 'retinanet_deit_tiny_sfp_coco.py'))
    model = MODELS.build(cfg.model)
    groups = groups_by_name(model, build_optim_wrapper(model, cfg.optim_wrapper))
    lr = cfg.optim_wrapper.optimizer.lr
    assert groups['backbone.vit.pos_embed']['lr'] == pytest.approx(lr * 0.7**13)
    assert groups['backbone.vit.pos_embed']['weight_decay'] == 0.
    assert groups['backbone.vit.blocks.11.attn.qkv.weight']['lr'] == pytest.approx(lr * 0.7)
    assert groups['bbox_head.retina_cls.weight']['lr'] == pytest.approx(lr)
