"""StudentTeacherDisagreement, the competition term of adaptive DeepInversion: the Bernoulli KL
by hand, zero for a copy of the teacher, gradients to the images, teacher weights, and heads
that cannot be compared refused when it is built."""
import math

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules

from conftest import TEACHER_CONFIG
from mmdfkd.models.synthesis.competition import StudentTeacherDisagreement, bernoulli_kl
from mmdfkd.utils import load_config

register_all_modules()


def _detector(seed: int, cfg=None):
    torch.manual_seed(seed)
    detector = MODELS.build(cfg or load_config(TEACHER_CONFIG).model).eval()
    detector.requires_grad_(False)
    return detector


def _fcos_cfg():
    """The demo teacher with an anchor-free FCOS head: no locations shared with RetinaNet."""
    cfg = load_config(TEACHER_CONFIG).model
    cfg.type = 'FCOS'
    cfg.bbox_head = dict(
        type='FCOSHead', num_classes=cfg.bbox_head.num_classes, in_channels=128,
        feat_channels=64, stacked_convs=1, strides=[8, 16, 32],
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                      loss_weight=1.0),
        loss_bbox=dict(type='IoULoss', loss_weight=1.0),
        loss_centerness=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0))
    cfg.test_cfg = dict(nms_pre=100, min_bbox_size=0, score_thr=0.05,
                        nms=dict(type='nms', iou_threshold=0.5), max_per_img=50)
    return cfg


def test_bernoulli_kl_hand_computed():
    p, q = torch.tensor(0.5), torch.tensor(0.25)
    expected = 0.5 * torch.log(torch.tensor(2.)) + 0.5 * torch.log(torch.tensor(0.5 / 0.75))
    torch.testing.assert_close(bernoulli_kl(p, q), expected)


def test_zero_for_a_copy_of_the_teacher_and_differentiable_in_the_images():
    teacher, student = _detector(0), _detector(1)
    images = (torch.rand(2, 3, 128, 128) * 255).requires_grad_(True)
    different = StudentTeacherDisagreement(student, [teacher], [1.0])(images)
    different.backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    student.load_state_dict(teacher.state_dict())
    with torch.no_grad():
        same = StudentTeacherDisagreement(student, [teacher], [1.0])(images)
    assert same.item() < 1e-6 < different.item() <= 1.0


def test_teachers_count_by_their_weights():
    student, other = _detector(0), _detector(1)
    copy = _detector(2)
    copy.load_state_dict(student.state_dict())  # agrees everywhere: divergence 0
    images = torch.rand(1, 3, 64, 64) * 255
    with torch.no_grad():
        alone = StudentTeacherDisagreement(student, [other], [1.0])(images)
        both = StudentTeacherDisagreement(student, [copy, other], [1.0, 3.0])(images)
    torch.testing.assert_close(both, alone * 3.0 / 4.0)


def test_hand_computed_on_one_location():
    """A head of one location and class: student score 0.5, teacher 0.99 (clamped from
    sigmoid(10)); the Jensen-Shannon divergence over ln 2 by hand."""

    class _Head(torch.nn.Module):

        def __init__(self, logit: float) -> None:
            super().__init__()
            self.logit = logit

        def forward(self, feats):
            return [torch.full((1, 1, 1, 1), self.logit)], [torch.zeros(1, 4, 1, 1)]

    teacher, student = _detector(0), _detector(1)
    for detector, logit in ((student, 0.), (teacher, 10.)):
        detector.bbox_head.forward = _Head(logit).forward
        detector.bbox_head.cls_out_channels = 1
    with torch.no_grad():
        value = StudentTeacherDisagreement(student, [teacher], [1.0])(torch.zeros(1, 3, 32, 32))
    p, q = 0.5, 0.99
    m = (p + q) / 2

    def kl(a, b):
        return a * math.log(a / b) + (1 - a) * math.log((1 - a) / (1 - b))

    assert value.item() == pytest.approx((kl(p, m) + kl(q, m)) / 2 / math.log(2), rel=1e-5)


def test_heads_that_share_no_locations_are_refused_when_built():
    with pytest.raises(ValueError, match='needs heads that share locations.*Set adi_weight=0 '
                       'for this pair'):
        StudentTeacherDisagreement(_detector(0, _fcos_cfg()), [_detector(1)], [1.0])
