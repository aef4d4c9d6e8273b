"""The ViT-teacher demo configs: the teacher's detector is the student's at twice the width
with no BatchNorm, the config that trains it widens the student the same way, and the two
data-free recipes from it differ only in the patch-similarity prior of their inversion."""
import os.path as osp

import torch
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.config import Config

from conftest import REPO_ROOT
from mmdfkd.models.synthesis.bn_statistics import describe_bn_prior
from mmdfkd.models.synthesis.patch_similarity import attention_layers
from mmdfkd.models.distillers.teacher_loader import resolve_teacher_config
from mmdfkd.utils import load_config

DEMO = osp.join(REPO_ROOT, 'configs', 'demo')
VIT_TEACHER = osp.join(DEMO, '_base_', 'models', 'retinanet_vit256_shapes.py')
STUDENT = osp.join(DEMO, '_base_', 'models', 'retinanet_deit_tiny_shapes.py')


def _config(name: str) -> Config:
    return load_config(osp.join(DEMO, name))


def test_the_teacher_is_the_wider_student_without_batchnorm():
    register_all_modules()
    teacher = MODELS.build(load_config(VIT_TEACHER).model)
    student = MODELS.build(load_config(STUDENT).model)
    assert describe_bn_prior(teacher)[0] == 'none'
    assert len(attention_layers(teacher)) == 6
    params = [sum(p.numel() for p in m.parameters()) for m in (teacher, student)]
    assert 2 < params[0] / params[1] < 3
    with torch.no_grad():
        levels = teacher.extract_feat(torch.rand(1, 3, 128, 128))
    assert [tuple(f.shape[1:]) for f in levels] == [(128, 16, 16), (128, 8, 8), (128, 4, 4)]


def test_the_training_config_widens_the_student_to_the_teachers_detector():
    trained = _config('kd_vit256_teacher_shapes.py').model.student
    assert trained == load_config(VIT_TEACHER).model
    evaluated = _config('retinanet_vit256_shapes.py')
    assert evaluated.model == load_config(VIT_TEACHER).model
    # Distilled from the CNN demo teacher with the real-data terms of the student's baseline.
    real_kd = _config('kd_deit_tiny_shapes_real.py').model
    assert _config('kd_vit256_teacher_shapes.py').model.distill_losses == real_kd.distill_losses


def test_the_distillers_learn_from_the_exported_vit_teacher():
    for name in ('dfkd_vit256_deit_tiny_shapes.py', 'dfkd_vit256_psim_deit_tiny_shapes.py',
                 'dfkd_vit256_images_mosaic_deit_tiny_shapes.py',
                 'dfkd_vit256_psim_images_mosaic_deit_tiny_shapes.py'):
        (teacher, ) = _config(name).model.teachers
        assert resolve_teacher_config(teacher.config) == load_config(VIT_TEACHER).model
        assert teacher.checkpoint == 'work_dirs/demo/teacher_vit256/student.pth'


def test_the_prior_is_the_only_difference_of_the_two_inversions():
    fallback = _config('dfkd_vit256_deit_tiny_shapes.py').to_dict()
    prior = _config('dfkd_vit256_psim_deit_tiny_shapes.py').to_dict()
    fallback_loss = fallback['custom_hooks'][0]['synthesizer']['loss']
    prior_loss = prior['custom_hooks'][0]['synthesizer']['loss']
    assert prior_loss.pop('psim_weight') == 1.0 and prior_loss.pop('bn_weight') == 0.
    # The demo inversion's BN settings, which find no BN statistics in this teacher, and its
    # (unused) competition term, set to their defaults in the fallback.
    assert fallback_loss.pop('bn_weight') > 0
    assert fallback_loss.pop('bn_first_multiplier') and fallback_loss.pop('adi_weight') == 0
    assert fallback == prior
    # The stored-image recipes differ only in the bank they read.
    where = ('synthesis_config', 'bank_root', 'train_dataloader')
    images = [{k: v for k, v in _config(name).to_dict().items() if k not in where}
              for name in ('dfkd_vit256_images_mosaic_deit_tiny_shapes.py',
                           'dfkd_vit256_psim_images_mosaic_deit_tiny_shapes.py')]
    assert images[0] == images[1]
