"""DetectionDistiller(inherit=...): student submodules start from the teacher's weights."""
import copy
import os.path as osp

import pytest
import torch
from mmcv.cnn import ConvModule
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules

import mmdfkd  # noqa: F401
from conftest import REPO_ROOT
from distill_fixtures import save_teacher_checkpoint, student_model_cfg, teacher_model_cfg
from mmdfkd.models.distillers.inheritance import inheritance_pairs
from mmdfkd.utils import load_config

register_all_modules(init_default_scope=True)


@pytest.fixture(scope='module')
def teacher_ckpt(tmp_path_factory) -> str:
    return save_teacher_checkpoint(str(tmp_path_factory.mktemp('teacher') / 'teacher.pth'),
                                   seed=3)


def _student_with_teacher_head(norm_cfg: dict) -> dict:
    """A 64-channel-FPN student whose neck outputs the teacher's 128 channels, so its head
    has the teacher's shapes; ``norm_cfg`` is the head's norm."""
    cfg = student_model_cfg()
    cfg['neck']['out_channels'] = 128
    cfg['bbox_head'] = copy.deepcopy(teacher_model_cfg()['bbox_head'])
    cfg['bbox_head']['norm_cfg'] = norm_cfg
    return cfg


def _distiller(teacher_ckpt, student: dict, inherit):
    return MODELS.build(dict(type='DetectionDistiller', student=student,
                             teachers=dict(config=teacher_model_cfg(), checkpoint=teacher_ckpt),
                             inherit=inherit, probe_shape=(128, 128)))


def test_groupnorm_head_inherits_convs_and_affine_at_init_weights(teacher_ckpt):
    gn = dict(type='GN', num_groups=32, requires_grad=True)
    model = _distiller(teacher_ckpt, _student_with_teacher_head(gn), ['bbox_head'])
    student, teacher = model.student.bbox_head, model.teachers[0].bbox_head
    assert not torch.equal(student.retina_cls.weight, teacher.retina_cls.weight)
    neck_before = model.student.neck.fpn_convs[0].conv.weight.clone()

    model.init_weights()

    for name in ('cls_convs', 'reg_convs'):
        for s, t in zip(getattr(student, name), getattr(teacher, name)):
            assert torch.equal(s.conv.weight, t.conv.weight)
            assert torch.equal(s.gn.weight, t.bn.weight)
            assert torch.equal(s.gn.bias, t.bn.bias)
    for name in ('retina_cls', 'retina_reg'):
        assert torch.equal(getattr(student, name).weight, getattr(teacher, name).weight)
        assert torch.equal(getattr(student, name).bias, getattr(teacher, name).bias)
    # Only the named submodule is inherited; the rest is initialized as usual.
    assert not torch.equal(model.student.neck.fpn_convs[0].conv.weight, neck_before)
    # The copy is a copy: training the student leaves the teacher alone.
    student.retina_cls.weight.data.add_(1.0)
    assert not torch.equal(student.retina_cls.weight, teacher.retina_cls.weight)


def test_same_structure_head_computes_what_the_teacher_head_computes(teacher_ckpt):
    bn = dict(type='BN', requires_grad=True)
    model = _distiller(teacher_ckpt, _student_with_teacher_head(bn), 'bbox_head')
    model.init_weights()
    model.eval()
    torch.manual_seed(0)
    features = [torch.randn(2, 128, s, s) for s in (16, 8, 4)]
    with torch.no_grad():
        student_out = model.student.bbox_head(features)
        teacher_out = model.teachers[0].bbox_head(features)
    for s_levels, t_levels in zip(student_out, teacher_out):
        for s, t in zip(s_levels, t_levels):
            torch.testing.assert_close(s, t)


def test_mismatched_shapes_are_a_build_error(teacher_ckpt):
    # The default test student has a 64-channel head; the teacher's has 128 channels.
    with pytest.raises(ValueError, match=r"bbox_head.*teacher's channels.*remove 'bbox_head'"):
        _distiller(teacher_ckpt, student_model_cfg(), ['bbox_head'])


def test_unknown_submodule_is_a_build_error(teacher_ckpt):
    with pytest.raises(KeyError, match='model.inherit'):
        _distiller(teacher_ckpt, student_model_cfg(), ['roi_head'])


def test_tensors_without_a_teacher_counterpart_are_kept_and_listed():
    student = torch.nn.Module()
    student.block = ConvModule(4, 8, 3, norm_cfg=dict(type='GN', num_groups=2))
    teacher = torch.nn.Module()
    teacher.block = ConvModule(4, 8, 3, bias=True, norm_cfg=None)

    pairs, kept = inheritance_pairs(student, teacher, 'block')

    assert [name for name, _, _ in pairs] == ['block.conv.weight']
    assert kept == ['block.gn.weight', 'block.gn.bias']


def test_a_hybrid_vit_inherits_the_teachers_stem_and_computes_its_first_stage(teacher_ckpt):
    """dict(student=..., teacher=...) pairs submodules of different names: the demo's hybrid
    student (configs/demo/_base_/models/conv_stem_r18.py) takes the teacher's backbone stem."""
    pieces = load_config(osp.join(REPO_ROOT, 'configs', 'demo', '_base_', 'models',
                                  'conv_stem_r18.py'))
    student = load_config(osp.join(REPO_ROOT, 'configs', 'demo', '_base_', 'models',
                                   'retinanet_deit_tiny_shapes.py')).model.to_dict()
    student['backbone'].update(pieces.conv_stem_student.backbone.to_dict())
    model = _distiller(teacher_ckpt, student, pieces.conv_stem_inherit.copy())
    stem, teacher = model.student.backbone.vit.patch_embed.stem, model.teachers[0].backbone
    assert not torch.equal(stem.conv1.weight, teacher.conv1.weight)

    model.init_weights()
    model.train()  # the stem stays in eval mode (frozen, norm_eval), like the teacher

    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = teacher.layer1(teacher.maxpool(teacher.relu(teacher.bn1(teacher.conv1(x)))))
        torch.testing.assert_close(stem(x)[-1], expected)
    assert not any(p.requires_grad for p in stem.parameters())
    # Parts of the teacher's backbone the stem lacks (layer2..4) are not an error.
    assert not hasattr(stem, 'layer2')


def test_malformed_inherit_entries_are_a_build_error(teacher_ckpt):
    with pytest.raises(ValueError, match=r"model.inherit: .*dict\(student=NAME, teacher=NAME\)"):
        _distiller(teacher_ckpt, student_model_cfg(), [dict(student='backbone')])
    with pytest.raises(KeyError, match="model.inherit: the teacher has no submodule 'roi_head'"):
        _distiller(teacher_ckpt, student_model_cfg(),
                   [dict(student='backbone', teacher='roi_head')])
