"""The distillation terms, numerically: dense head terms through level flattening and box
decoding, every multi-teacher path (weighted sums, fused detections, `teachers=[...]`
selection), label mapping, and a new kind of term added by registration alone."""
import math

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.structures import InstanceData
from torch import nn

import mmdfkd  # noqa: F401
from distill_fixtures import (data_samples, save_teacher_checkpoint, student_model_cfg,
                              teacher_model_cfg)
from mmdfkd.models.distillers import DetectionDistiller
from mmdfkd.models.distillers.terms import DistillTerm, TermBatch
from mmdfkd.models.losses import PKDLoss
from mmdfkd.registry import DISTILL_TERMS

register_all_modules(init_default_scope=True)

# A preprocessor that is the identity on pixel values, so a teacher equal to the student sees
# bit-identical inputs.
IDENTITY_PREPROCESSOR = dict(type='DetDataPreprocessor', mean=[0., 0., 0.], std=[1., 1., 1.],
                             bgr_to_rgb=False, pad_size_divisor=32)


@pytest.fixture(scope='module')
def teacher_ckpts(tmp_path_factory):
    folder = tmp_path_factory.mktemp('teachers')
    return [save_teacher_checkpoint(str(folder / f'teacher{seed}.pth'), seed=seed)
            for seed in (0, 1)]


def _distiller(teachers, losses, student=None, weights=None, **kwargs) -> DetectionDistiller:
    teacher_cfg = kwargs.pop('teacher_cfg', teacher_model_cfg())
    return MODELS.build(dict(
        type='DetectionDistiller', student=student or student_model_cfg(),
        teachers=[dict(config=teacher_cfg, checkpoint=ckpt, weight=w)
                  for ckpt, w in zip(teachers, weights or [1.0] * len(teachers))],
        distill_losses=losses, probe_shape=(128, 128), **kwargs))


def _batch(model, teacher_outputs, student_outputs=None, samples=None) -> TermBatch:
    return TermBatch(inputs=torch.zeros(1, 3, 128, 128), data_samples=samples or data_samples(1),
                     student=model.student, teachers=model.teachers,
                     teacher_weights=model.teacher_weights, teacher_outputs=teacher_outputs,
                     student_outputs=student_outputs or {})


# --------------------------------------------------------------------------------- dense head
DENSE_TERMS = [
    dict(type='ClassificationKDLoss', student='bbox_head', teacher='bbox_head', mode='softmax',
         name='cls'),
    dict(type='BoxRegressionKDLoss', student='bbox_head', teacher='bbox_head', name='box'),
    dict(type='BoxRegressionKDLoss', student='bbox_head', teacher='bbox_head',
         normalize_l1=False, giou_weight=0.0, name='box_l1_px')]


def test_dense_terms_are_exactly_zero_for_a_copy_of_the_teacher(teacher_ckpts):
    teacher_cfg = dict(teacher_model_cfg(), data_preprocessor=IDENTITY_PREPROCESSOR)
    model = _distiller(teacher_ckpts[:1], DENSE_TERMS, student=teacher_cfg,
                       teacher_cfg=teacher_cfg, gt_loss_weight=0.0).eval()
    torch.manual_seed(0)
    inputs = torch.rand(2, 3, 128, 128) * 255
    with torch.no_grad():
        different = model.loss(inputs, data_samples())
        model.student.load_state_dict(model.teachers[0].state_dict())
        same = model.loss(inputs, data_samples())
    assert sorted(same) == ['loss_box', 'loss_box_l1_px', 'loss_cls']
    assert all(different[key].item() > 0 for key in same)
    assert all(same[key].item() == 0.0 for key in same), same


def test_dense_terms_hand_made_difference(teacher_ckpts):
    model = _distiller(teacher_ckpts[:1], DENSE_TERMS, student=teacher_model_cfg())
    head = model.student.bbox_head
    # One image, three levels of 1 x 1 maps, 9 anchors, 6 classes: M = 27 anchors. The teacher
    # outputs zeros. The student differs at one anchor in its class logits (class 0 gets
    # ln 6) and at another in its box regression (dx = 0.5: the box moves by half its width).
    cls_t = [torch.zeros(1, 9 * 6, 1, 1) for _ in range(3)]
    reg_t = [torch.zeros(1, 9 * 4, 1, 1) for _ in range(3)]
    cls_s = [c.clone() for c in cls_t]
    reg_s = [r.clone() for r in reg_t]
    cls_s[1][0, 4 * 6 + 0] = math.log(6)
    reg_s[2][0, 5 * 4 + 0] = 0.5
    batch = _batch(model, [{'bbox_head': (cls_t, reg_t)}], {'bbox_head': (cls_s, reg_s)})
    losses = {}
    for term in model.terms:
        losses.update(term.compute(batch))
    # Softmax KL(teacher || student) at the one anchor: teacher uniform, student (6, 1, 1, 1,
    # 1, 1) / 11; averaged over the 27 anchors.
    kl = 1 / 6 * math.log((1 / 6) / (6 / 11)) + 5 / 6 * math.log((1 / 6) / (1 / 11))
    assert losses['loss_cls'].item() == pytest.approx(kl / 27, rel=1e-5)
    # Boxes: every teacher probability is sigmoid(0), so the weighted mean is the plain mean.
    # Shifted by half the width: normalized L1 = (0.5 + 0 + 0.5 + 0) / 4, GIoU = 1/3 (the
    # boxes share half their area, the enclosing box is the union).
    assert losses['loss_box'].item() == pytest.approx((0.25 + 2 * (1 - 1 / 3)) / 27, rel=1e-5)
    # In pixels the L1 depends on which anchor it is: level 2, anchor 5 of the prior order.
    x1, _, x2, _ = head.prior_generator.base_anchors[2][5].tolist()
    assert losses['loss_box_l1_px'].item() == pytest.approx(0.25 * (x2 - x1) / 27, rel=1e-5)


# ------------------------------------------------------------------------------ multi-teacher
def _record(module, store, key):
    return module.register_forward_hook(lambda m, args, out: store.setdefault(key, out))


def test_feature_terms_sum_over_teachers_with_their_weights(teacher_ckpts):
    # The student has the teachers' channels (no adapters), so the expected value is PKD of
    # the recorded maps, level by level, weighted by teacher.
    model = _distiller(teacher_ckpts, [
        dict(type='PKDLoss', student='neck', teacher='neck'),
        dict(type='PKDLoss', student='neck', teacher='neck', teachers=[1], name='pkd_t1')],
        student=teacher_model_cfg(), weights=[1.0, 0.5], gt_loss_weight=0.0)
    assert not any(len(term.adapters) for term in model.terms)
    recorded = {}
    handles = [_record(model.student.neck, recorded, 's'),
               _record(model.teachers[0].neck, recorded, 't0'),
               _record(model.teachers[1].neck, recorded, 't1')]
    torch.manual_seed(0)
    losses = model.loss(torch.randn(2, 3, 128, 128), data_samples())
    for handle in handles:
        handle.remove()
    pkd = PKDLoss()

    def summed(teacher):
        return sum(pkd(s, t) for s, t in zip(recorded['s'], recorded[teacher]))

    torch.testing.assert_close(losses['loss_PKDLoss_neck'],
                               1.0 * summed('t0') + 0.5 * summed('t1'))
    torch.testing.assert_close(losses['loss_pkd_t1'], 0.5 * summed('t1'))


def test_a_teacher_no_term_uses_does_not_run(teacher_ckpts):
    model = _distiller(teacher_ckpts, [dict(type='PKDLoss', student='neck', teacher='neck',
                                            teachers=[1])])
    assert list(model.terms[0].level_pairs) == [1] and all(
        key.startswith('1_') for key in model.terms[0].adapters)
    calls = []
    model.teachers[0].register_forward_pre_hook(lambda *args: calls.append(1))
    model.teachers[0].backbone.register_forward_pre_hook(lambda *args: calls.append(1))
    model.loss(torch.randn(2, 3, 128, 128), data_samples())
    assert calls == []


def test_detections_of_several_teachers_are_fused_with_their_weights(teacher_ckpts):
    model = _distiller(teacher_ckpts, [
        dict(type='PseudoBoxLoss', score_thr=0.3),
        dict(type='PseudoBoxLoss', score_thr=0.3, teachers=[1], name='pseudo_t1')],
        weights=[1.0, 2.0])
    first = InstanceData(bboxes=torch.tensor([[0., 0., 10., 10.]]), scores=torch.tensor([0.9]),
                         labels=torch.tensor([0]))
    second = InstanceData(bboxes=torch.tensor([[1., 1., 11., 11.], [50., 50., 60., 60.]]),
                          scores=torch.tensor([0.6, 0.5]), labels=torch.tensor([0, 1]))
    batch = _batch(model, [{'detections': [first]}, {'detections': [second]}])
    both, only_second = (term.pseudo_samples(batch)[0].gt_instances for term in model.terms)
    # Weighted scores 0.9 (teacher 0) and 1.2, 1.0 (teacher 1): the two label-0 boxes overlap
    # by IoU 81 / 119 > 0.55 and fuse into their score-weighted mean.
    fused = (torch.tensor([1., 1., 11., 11.]) * 1.2
             + torch.tensor([0., 0., 10., 10.]) * 0.9) / 2.1
    torch.testing.assert_close(both.bboxes,
                               torch.stack([fused, torch.tensor([50., 50., 60., 60.])]))
    assert both.labels.tolist() == [0, 1]
    torch.testing.assert_close(only_second.bboxes, second.bboxes)  # teachers=[1]: one teacher


def test_pseudo_boxes_of_two_real_teachers_train_the_student(teacher_ckpts):
    teacher_cfg = teacher_model_cfg()
    teacher_cfg['test_cfg']['score_thr'] = 0.0  # random teachers score near the prior
    model = _distiller(teacher_ckpts, [dict(type='PseudoBoxLoss', score_thr=0.0)],
                       teacher_cfg=teacher_cfg, weights=[1.0, 0.5], gt_loss_weight=0.0)
    model.train()
    torch.manual_seed(0)
    losses = model.loss(torch.randn(2, 3, 128, 128), data_samples())
    assert sorted(losses) == ['loss_PseudoBoxLoss_bbox', 'loss_PseudoBoxLoss_cls']
    total = sum(sum(v) for v in losses.values())
    assert torch.isfinite(total) and total > 0


def test_class_mapping_relabels_and_drops_unmapped_teacher_classes(teacher_ckpts):
    model = _distiller(teacher_ckpts[:1], [dict(type='PseudoBoxLoss', score_thr=0.0)],
                       class_mapping={0: 3, 2: 1})
    dets = InstanceData(bboxes=torch.arange(12.).reshape(3, 4), scores=torch.ones(3),
                        labels=torch.tensor([0, 1, 2]))
    mapped = model.terms[0].map_labels(dets)
    assert mapped.labels.tolist() == [3, 1]
    torch.testing.assert_close(mapped.bboxes, dets.bboxes[[0, 2]])


# ----------------------------------------------------------------------------- a new term kind
class _MeanGapLoss(nn.Module):
    input_kind = 'mean_gap'

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = loss_weight


class _MeanGapTerm(DistillTerm):
    """|mean of the student's source - mean of the teacher's|."""

    config_keys = ('student', 'teacher')

    def __init__(self, config, student, teachers) -> None:
        super().__init__(config, student, teachers)
        self.source = config.student

    @property
    def student_sources(self):
        return [self.source]

    @property
    def teacher_sources(self):
        return [self.source]

    def teacher_loss(self, teacher_id, batch):
        s = batch.student_outputs[self.source][0]
        t = batch.teacher_outputs[teacher_id][self.source][0]
        return (s.mean() - t.mean()).abs() * self.loss.loss_weight


def test_a_new_kind_of_term_needs_only_its_registration(teacher_ckpts):
    MODELS.register_module(name='_MeanGapLoss', module=_MeanGapLoss, force=True)
    DISTILL_TERMS.register_module(name='mean_gap', module=_MeanGapTerm, force=True)
    try:
        model = _distiller(teacher_ckpts, [
            dict(type='_MeanGapLoss', student='neck', teacher='neck', loss_weight=2.0,
                 name='gap')],
            weights=[1.0, 0.25], gt_loss_weight=0.0)
        recorded = {}
        handles = [_record(model.student.neck, recorded, 's'),
                   _record(model.teachers[0].neck, recorded, 't0'),
                   _record(model.teachers[1].neck, recorded, 't1')]
        losses = model.loss(torch.randn(1, 3, 128, 128), data_samples(1))
        for handle in handles:
            handle.remove()
        gap = [(recorded['s'][0].mean() - recorded[t][0].mean()).abs() * 2
               for t in ('t0', 't1')]
        torch.testing.assert_close(losses['loss_gap'], gap[0] + 0.25 * gap[1])
    finally:
        MODELS.module_dict.pop('_MeanGapLoss')
        DISTILL_TERMS.module_dict.pop('mean_gap')
