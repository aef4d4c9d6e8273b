"""DetectionDistiller: teachers frozen and kept out of checkpoints, per-model normalization,
level matching with adapters, build-time checks, and a train step for every loss kind."""

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.utils import register_all_modules

import mmdfkd  # noqa: F401
from distill_fixtures import (NUM_CLASSES, data_samples, save_teacher_checkpoint,
                              student_model_cfg, teacher_model_cfg)
from mmdfkd.models.distillers import DetectionDistiller

register_all_modules(init_default_scope=True)


@pytest.fixture(scope='module')
def teacher_ckpt(tmp_path_factory) -> str:
    return save_teacher_checkpoint(str(tmp_path_factory.mktemp('teacher') / 'teacher.pth'))


def _distiller(teacher_ckpt, student='retinanet', losses=(), **kwargs) -> DetectionDistiller:
    cfg = dict(type='DetectionDistiller', student=student_model_cfg(student),
               teachers=dict(config=teacher_model_cfg(), checkpoint=teacher_ckpt),
               distill_losses=list(losses), probe_shape=(128, 128), **kwargs)
    return MODELS.build(cfg)


def _batch(num=2, size=128):
    torch.manual_seed(0)
    return torch.randn(num, 3, size, size), data_samples(num, size)


def test_teachers_are_frozen_eval_and_not_in_checkpoints(teacher_ckpt):
    model = _distiller(teacher_ckpt)
    assert all(not p.requires_grad for p in model.teachers.parameters())
    model.train()
    assert model.student.training and not model.teachers[0].training
    state = model.state_dict()
    assert state and not any(k.startswith('teachers.') for k in state)
    assert any(k.startswith('student.backbone.') for k in state)
    # A checkpoint without teachers loads strictly (teachers come from their own file).
    fresh = _distiller(teacher_ckpt)
    fresh.load_state_dict(state, strict=True)
    saved = torch.load(teacher_ckpt, weights_only=True)['state_dict']
    key = 'backbone.conv1.weight'
    torch.testing.assert_close(fresh.teachers[0].state_dict()[key], saved[key])


def test_init_weights_leaves_the_loaded_teacher_alone(teacher_ckpt):
    model = _distiller(teacher_ckpt)
    before = model.teachers[0].backbone.conv1.weight.clone()
    model.init_weights()
    torch.testing.assert_close(model.teachers[0].backbone.conv1.weight, before)


def test_teacher_follows_dtype_moves(teacher_ckpt):
    model = _distiller(teacher_ckpt).to(torch.float64)
    assert model.teachers[0].backbone.conv1.weight.dtype == torch.float64


def test_teacher_config_by_relative_path_and_errors(teacher_ckpt, tmp_path):
    from mmengine.config import Config
    Config(dict(model=teacher_model_cfg())).dump(str(tmp_path / 'teacher_cfg.py'))
    cfg = dict(type='DetectionDistiller', student=student_model_cfg(),
               teachers=[dict(config='teacher_cfg.py', checkpoint=teacher_ckpt)],
               config_dir=str(tmp_path))
    assert isinstance(MODELS.build(cfg), DetectionDistiller)

    cfg['teachers'] = [dict(config='./missing_cfg.py', checkpoint=teacher_ckpt)]
    with pytest.raises(FileNotFoundError) as info:
        MODELS.build(cfg)
    message = str(info.value)  # the form that works from any folder, with the name given
    assert "Teacher config './missing_cfg.py' was not found" in message
    assert 'as "{{fileDirname}}/missing_cfg.py"' in message
    cfg['teachers'] = [dict(config='teacher_cfg.py', checkpoint=str(tmp_path / 'nope.pth'))]
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        MODELS.build(cfg)


def test_bad_teacher_checkpoints_are_clear_errors(teacher_ckpt, tmp_path):
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(open(teacher_ckpt, 'rb').read()[:1000])
    with pytest.raises(RuntimeError, match='truncated'):
        _distiller(str(truncated))

    # Damage inside the largest tensor: torch.load would read it silently; the CRC check fails.
    data = bytearray(open(teacher_ckpt, 'rb').read())
    data[len(data) // 2:len(data) // 2 + 64] = bytes(64)
    (tmp_path / 'damaged.pth').write_bytes(bytes(data))
    with pytest.raises(RuntimeError, match='fails its CRC check'):
        _distiller(str(tmp_path / 'damaged.pth'))

    state = torch.load(teacher_ckpt, weights_only=True)['state_dict']
    key = next(k for k, v in state.items() if v.is_floating_point() and v.dim() == 4)
    torch.save(dict(state_dict={**state, key: torch.full_like(state[key], float('nan'))}),
               str(tmp_path / 'nan.pth'))
    with pytest.raises(RuntimeError, match='NaN or infinite weights'):
        _distiller(str(tmp_path / 'nan.pth'))
    torch.save(dict(state_dict={**state, key: state[key][:1]}), str(tmp_path / 'shape.pth'))
    with pytest.raises(RuntimeError, match=f'differ in shape .*{key}'):
        _distiller(str(tmp_path / 'shape.pth'))

    other = teacher_model_cfg()
    other['backbone']['depth'] = 34
    torch.save(dict(state_dict=MODELS.build(other).state_dict()), str(tmp_path / 'r34.pth'))
    with pytest.raises(RuntimeError, match='does not match the teacher config'):
        _distiller(str(tmp_path / 'r34.pth'))


def test_class_count_mismatch_needs_a_mapping(teacher_ckpt):
    student = student_model_cfg()
    student['bbox_head']['num_classes'] = 3
    cfg = dict(type='DetectionDistiller', student=student,
               teachers=dict(config=teacher_model_cfg(), checkpoint=teacher_ckpt))
    with pytest.raises(ValueError, match='6 classes but the student 3'):
        MODELS.build(cfg)
    cfg['class_mapping'] = {0: 0, 1: 1, 2: 2}
    assert isinstance(MODELS.build(cfg), DetectionDistiller)


def test_teacher_gets_its_own_normalization(teacher_ckpt):
    teacher = teacher_model_cfg()
    teacher['data_preprocessor'] = dict(type='DetDataPreprocessor', mean=[0., 0., 0.],
                                        std=[255., 255., 255.], bgr_to_rgb=False,
                                        pad_size_divisor=32)
    cfg = dict(type='DetectionDistiller', student=student_model_cfg(),
               teachers=dict(config=teacher, checkpoint=teacher_ckpt),
               distill_losses=[dict(type='PKDLoss', student='neck', teacher='neck')],
               probe_shape=(128, 128))
    model = MODELS.build(cfg)
    raw = torch.rand(1, 3, 100, 120) * 255  # BGR, as loaded; not divisible by 32
    seen = {}
    model.teachers[0].backbone.register_forward_pre_hook(
        lambda module, args: seen.setdefault('x', args[0]))
    student_inputs = model.data_preprocessor(dict(inputs=[raw[0]]), False)['inputs']
    model._run_teacher(0, student_inputs, [DetDataSample(metainfo=dict(
        img_shape=(100, 120), batch_input_shape=tuple(student_inputs.shape[-2:])))])
    expected = raw / 255.  # the teacher's own preprocessing: BGR kept, /255, padded to 32
    assert seen['x'].shape[-2:] == (128, 128)
    torch.testing.assert_close(seen['x'][..., :100, :120], expected, rtol=1e-4, atol=1e-4)


def test_feature_term_matches_levels_by_stride_and_builds_adapters(teacher_ckpt):
    model = _distiller(teacher_ckpt, losses=[
        dict(type='ChannelWiseDistillLoss', student='neck', teacher='neck', temperature=1.0)])
    term = model.terms[0]
    assert [s for *_, s in term.level_pairs[0]] == [8, 16, 32]  # the teacher's FPN levels
    assert len(term.adapters) == 3
    assert term.adapters['0_0'].in_channels == 64 and term.adapters['0_0'].out_channels == 128

    with pytest.raises(ValueError, match='teacher level 9 does not exist'):
        _distiller(teacher_ckpt, losses=[dict(type='PKDLoss', student='neck', teacher='neck',
                                              levels=[9])])


def test_bad_terms_are_build_errors(teacher_ckpt):
    with pytest.raises(ValueError, match=r"needs the keys \['teacher'\]"):
        _distiller(teacher_ckpt, losses=[dict(type='PKDLoss', student='neck')])
    with pytest.raises(ValueError, match='no submodule'):
        _distiller(teacher_ckpt, losses=[dict(type='PKDLoss', student='nek', teacher='neck')])
    with pytest.raises(TypeError, match='must be arguments of PKDLoss'):
        _distiller(teacher_ckpt, losses=[dict(type='PKDLoss', student='neck', teacher='neck',
                                              bogus=1)])
    with pytest.raises(ValueError, match='fg_mask does not apply'):
        _distiller(teacher_ckpt, losses=[dict(type='PKDLoss', student='neck', teacher='neck',
                                              fg_mask=dict(score_thr=0.3))])
    with pytest.raises(ValueError, match='Use feature losses and PseudoBoxLoss'):
        _distiller(teacher_ckpt, student='fcos', losses=[
            dict(type='ClassificationKDLoss', student='bbox_head', teacher='bbox_head')])


def test_a_bad_source_names_the_loss_entry_the_model_and_the_names_there(teacher_ckpt):
    with pytest.raises(ValueError) as info:
        _distiller(teacher_ckpt, losses=[dict(type='PKDLoss', student='nek', teacher='neck')])
    message = str(info.value)
    assert ("model.distill_losses[0] (PKDLoss): student='nek' names no submodule of the "
            "student (RetinaNet); did you mean 'neck'?") in message
    assert all(f"'{name}'" in message for name in ('backbone', 'neck', 'bbox_head'))

    with pytest.raises(ValueError) as info:
        _distiller(teacher_ckpt, losses=[
            dict(type='PKDLoss', student='neck', teacher='neck'),
            dict(type='ClassificationKDLoss', student='bbox_head', teacher='bbox_haed')])
    message = str(info.value)
    assert ("model.distill_losses[1] (ClassificationKDLoss): teacher='bbox_haed' names no "
            "submodule of teacher 0 (RetinaNet); did you mean 'bbox_head'") in message
    assert "Its top-level submodules are 'data_preprocessor', 'backbone', 'neck', " \
        "'bbox_head'." in message


def test_negative_weights_are_build_errors(teacher_ckpt):
    with pytest.raises(ValueError, match=r'DetectionDistiller: model.gt_loss_weight must be a '
                       r'finite number >= 0, got -1\.0\. A negative weight would make '
                       r'training maximize'):
        _distiller(teacher_ckpt, gt_loss_weight=-1.0)
    with pytest.raises(ValueError, match=r'model.distill_losses\[1\] \(PseudoBoxLoss\): '
                       r'PseudoBoxLoss: loss_weight must be a finite number >= 0, got -0\.5'):
        _distiller(teacher_ckpt, losses=[
            dict(type='PKDLoss', student='neck', teacher='neck'),
            dict(type='PseudoBoxLoss', loss_weight=-0.5)])
    with pytest.raises(ValueError, match=r'DetectionDistiller: model.teachers.0.weight must be '
                       r'a finite number >= 0, got -2'):
        MODELS.build(dict(type='DetectionDistiller', student=student_model_cfg(),
                          teachers=[dict(config=teacher_model_cfg(), checkpoint=teacher_ckpt,
                                         weight=-2)]))
    assert _distiller(teacher_ckpt, gt_loss_weight=0).gt_loss_weight == 0.0  # 0 turns it off


@pytest.mark.parametrize('losses,expected', [
    ([dict(type='PKDLoss', student='neck', teacher='neck', loss_weight=2.0)],
     ['loss_PKDLoss_neck']),
    ([dict(type='FeatureMSELoss', student='neck', teacher='neck',
           fg_mask=dict(score_thr=0.0, bg_weight=0.2))], ['loss_FeatureMSELoss_neck']),
    ([dict(type='ClassificationKDLoss', student='bbox_head', teacher='bbox_head'),
      dict(type='BoxRegressionKDLoss', student='bbox_head', teacher='bbox_head')],
     ['loss_ClassificationKDLoss_bbox_head', 'loss_BoxRegressionKDLoss_bbox_head']),
    ([dict(type='PseudoBoxLoss', score_thr=0.0)],
     ['loss_PseudoBoxLoss_cls', 'loss_PseudoBoxLoss_bbox']),
])
def test_train_step_of_each_loss_kind(teacher_ckpt, losses, expected):
    model = _distiller(teacher_ckpt, losses=losses, gt_loss_weight=0.0)
    model.train()
    inputs, samples = _batch()
    out = model.loss(inputs, samples)
    assert 'loss_cls' not in out  # gt_loss_weight=0: no ground-truth loss
    for key in expected:
        assert key in out, sorted(out)
    total = sum(v.sum() if torch.is_tensor(v) else sum(x.sum() for x in v)
                for k, v in out.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    assert model.student.backbone.conv1.weight.grad is not None
    assert model.student.backbone.conv1.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.teachers.parameters())


def test_feature_only_terms_do_not_run_the_teacher_head(teacher_ckpt):
    model = _distiller(teacher_ckpt, losses=[dict(type='PKDLoss', student='neck',
                                                   teacher='neck')])
    calls = []
    model.teachers[0].bbox_head.register_forward_hook(lambda *a: calls.append(1))
    inputs, samples = _batch()
    model.loss(inputs, samples)
    assert calls == []


def test_ground_truth_loss_and_shared_backbone_pass(teacher_ckpt):
    model = _distiller(teacher_ckpt, losses=[dict(type='PseudoBoxLoss', score_thr=0.0,
                                                  keep_gt=True)], gt_loss_weight=0.5)
    calls = []
    model.student.backbone.register_forward_hook(lambda *a: calls.append(1))
    inputs, samples = _batch()
    out = model.loss(inputs, samples)
    assert 'loss_cls' in out and 'loss_PseudoBoxLoss_cls' in out
    assert calls == [1]  # ground-truth loss and pseudo-box loss share one backbone pass
    assert 'extract_feat' not in vars(model.student)  # the class method is back


def test_predict_uses_student_or_teacher(teacher_ckpt):
    model = _distiller(teacher_ckpt).eval()
    inputs, samples = _batch(num=1)
    with torch.no_grad():
        student = model.predict(inputs, samples)[0].pred_instances
        model.predict_with = 'teacher'
        teacher = model.predict(inputs, samples)[0].pred_instances
        direct = model.teachers[0].predict(inputs, _batch(num=1)[1])[0].pred_instances
    torch.testing.assert_close(teacher.scores, direct.scores)
    assert not (len(student.scores) == len(teacher.scores)
                and torch.allclose(student.scores, teacher.scores))
    with pytest.raises(ValueError, match='predict_with'):
        _distiller(teacher_ckpt, predict_with='teacher3')


def test_teacher_from_an_mmdet_package_config(tmp_path):
    from mmdfkd.utils import load_config
    path = 'mmdet::retinanet/retinanet_r18_fpn_1x_coco.py'
    teacher = MODELS.build(load_config(path).model)  # 80 COCO classes, built, not downloaded
    torch.save(dict(state_dict=teacher.state_dict()), str(tmp_path / 'r18.pth'))
    model = MODELS.build(dict(type='DetectionDistiller', student=student_model_cfg(),
                              teachers=dict(config=path, checkpoint=str(tmp_path / 'r18.pth')),
                              class_mapping={i: i for i in range(NUM_CLASSES)}))
    assert model.teachers[0].bbox_head.num_classes == 80
    torch.testing.assert_close(model.teachers[0].backbone.conv1.weight,
                               teacher.backbone.conv1.weight)


def test_terms_with_the_same_name_are_a_build_error(teacher_ckpt):
    with pytest.raises(ValueError) as info:
        _distiller(teacher_ckpt, losses=[
            dict(type='PKDLoss', student='neck', teacher='neck', levels=[0]),
            dict(type='PKDLoss', student='neck', teacher='neck', levels=[1, 2])])
    message = str(info.value)
    assert "model.distill_losses[0] and [1] are both named 'PKDLoss_neck'" in message
    assert "Set `name='...'` on each of them" in message
    model = _distiller(teacher_ckpt, losses=[
        dict(type='PKDLoss', student='neck', teacher='neck', levels=[0], name='pkd_p3'),
        dict(type='PKDLoss', student='neck', teacher='neck', levels=[1, 2], name='pkd_p4')])
    out = model.loss(*_batch())
    assert {'loss_pkd_p3', 'loss_pkd_p4'} <= set(out)
    assert out['loss_pkd_p3'].item() != out['loss_pkd_p4'].item()


def test_keys_a_term_does_not_read_are_build_errors(teacher_ckpt):
    with pytest.raises(ValueError, match=r"model.distill_losses\[0\] \(ClassificationKDLoss\): "
                       r"`levels` does not apply to a 'dense_cls' term"):
        _distiller(teacher_ckpt, losses=[dict(type='ClassificationKDLoss', student='bbox_head',
                                              teacher='bbox_head', levels=[0])])
    with pytest.raises(ValueError, match="`student` does not apply to a 'detections' term"):
        _distiller(teacher_ckpt, losses=[dict(type='PseudoBoxLoss', student='neck')])


def test_log_keys_follow_one_pattern(teacher_ckpt):
    model = _distiller(teacher_ckpt, gt_loss_weight=0.5, losses=[
        dict(type='PKDLoss', student='neck', teacher='neck', name='pkd'),
        dict(type='PseudoBoxLoss', score_thr=0.0, name='pseudo_box', loss_weight=2.0)])
    out = model.loss(*_batch())
    assert sorted(out) == ['loss_bbox', 'loss_cls', 'loss_pkd', 'loss_pseudo_box_bbox',
                           'loss_pseudo_box_cls']
    # The term's part is the student's own head loss on the pseudo targets, times its weight.
    from mmdfkd.models.distillers.terms import TermBatch, term_part_key
    term = model.terms[1]
    inputs, samples = _batch()
    batch = TermBatch(inputs=inputs, data_samples=samples, student=model.student,
                      teachers=model.teachers, teacher_weights=model.teacher_weights,
                      teacher_outputs=[model._run_teacher(0, inputs, samples)])
    with torch.no_grad():
        head_losses = model.student.loss(inputs, term.pseudo_samples(batch))
        parts = term.compute(batch)
    torch.testing.assert_close(sum(parts['loss_pseudo_box_cls']),
                               2.0 * sum(head_losses['loss_cls']))
    assert term_part_key('pseudo_box', 'acc') == 'pseudo_box_acc'  # logged only: no 'loss'
    assert term_part_key('pseudo_box', 'loss_rpn_cls') == 'loss_pseudo_box_rpn_cls'


def test_a_key_given_twice_is_refused_not_overwritten(teacher_ckpt):
    model = _distiller(teacher_ckpt, losses=[
        dict(type='PKDLoss', student='neck', teacher='neck', name='x_cls'),
        dict(type='PseudoBoxLoss', score_thr=0.0, name='x')])
    with pytest.raises(RuntimeError, match=r"\['loss_x_cls'\] are given twice"):
        model.loss(*_batch())


def test_teachers_stay_out_of_the_state_dict_under_a_parent_and_with_keep_vars(teacher_ckpt):
    model = _distiller(teacher_ckpt, losses=[dict(type='PKDLoss', student='neck',
                                                   teacher='neck')])
    parent = torch.nn.ModuleDict(dict(distiller=model))
    state = parent.state_dict(keep_vars=True)
    assert not any('teachers.' in key for key in state)
    assert isinstance(state['distiller.student.backbone.conv1.weight'], torch.nn.Parameter)
    assert 'distiller.terms.0.adapters.0_0.weight' in state
    fresh = torch.nn.ModuleDict(dict(distiller=_distiller(teacher_ckpt, losses=[
        dict(type='PKDLoss', student='neck', teacher='neck')])))
    fresh.load_state_dict(parent.state_dict(), strict=True)  # teachers absent, still strict
    with pytest.raises(RuntimeError, match='student.backbone.conv1.weight'):
        state = parent.state_dict()
        del state['distiller.student.backbone.conv1.weight']
        fresh.load_state_dict(state, strict=True)


def test_ddp_ignores_exactly_the_teachers(teacher_ckpt):
    model = _distiller(teacher_ckpt)
    ignored = set(model._ddp_params_and_buffers_to_ignore)
    teacher_names = {f'teachers.{name}' for name, _ in model.teachers.named_parameters()}
    teacher_names |= {f'teachers.{name}' for name, _ in model.teachers.named_buffers()}
    assert ignored == teacher_names and any(k.endswith('running_mean') for k in ignored)
