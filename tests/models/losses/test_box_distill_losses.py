"""Head-output distillation losses: ClassificationKDLoss (logits), BoxRegressionKDLoss (boxes)."""
import math

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules

from mmdfkd.models.losses import BoxRegressionKDLoss, ClassificationKDLoss

register_all_modules()

LN3 = math.log(3)  # sigmoid(ln 3) = 3/4, softmax([0, ln 3]) = (1/4, 3/4)


@pytest.fixture(autouse=True)
def seed():
    torch.manual_seed(0)


def random_logits(m=6, k=4):
    return torch.randn(m, k), torch.randn(m, k)


def random_boxes(m=6):
    """Valid (x1, y1, x2, y2) pixel boxes: a teacher set and a jittered student set."""
    xy = torch.rand(m, 2) * 50
    teacher = torch.cat([xy, xy + 10 + torch.rand(m, 2) * 40], dim=1)
    return teacher + torch.randn(m, 4) * 3, teacher


# (registered type, extra init args, input factory, input_kind) of every configuration the
# shared properties are checked on.
HEAD_LOSSES = [
    pytest.param('ClassificationKDLoss', dict(mode='sigmoid', temperature=2.0), random_logits,
                 'dense_cls', id='cls-sigmoid'),
    pytest.param('ClassificationKDLoss', dict(mode='softmax', temperature=2.0), random_logits,
                 'dense_cls', id='cls-softmax'),
    pytest.param('BoxRegressionKDLoss', {}, random_boxes, 'dense_box', id='box'),
    pytest.param('BoxRegressionKDLoss', dict(normalize_l1=False), random_boxes, 'dense_box',
                 id='box-pixel-l1'),
]
LOSS_CLASSES = {'ClassificationKDLoss': ClassificationKDLoss,
                'BoxRegressionKDLoss': BoxRegressionKDLoss}


# ------------------------------------------------------------------------ shared properties


@pytest.mark.parametrize('name,kwargs,make_inputs,kind', HEAD_LOSSES)
def test_registered_builds_the_class_and_declares_its_input_kind(name, kwargs, make_inputs, kind):
    loss = MODELS.build(dict(type=name, **kwargs))
    assert type(loss) is LOSS_CLASSES[name]
    assert loss.input_kind == kind


@pytest.mark.parametrize('name,kwargs,make_inputs,kind', HEAD_LOSSES)
def test_gradient_reaches_the_student_and_not_the_teacher(name, kwargs, make_inputs, kind):
    student, teacher = make_inputs()
    student.requires_grad_()
    teacher.requires_grad_()
    weight = torch.rand(student.shape[0], requires_grad=True)
    for w in (None, weight):
        student.grad = None
        value = MODELS.build(dict(type=name, **kwargs))(student, teacher, w)
        assert value.dim() == 0
        value.backward()
        assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None and weight.grad is None


@pytest.mark.parametrize('name,kwargs,make_inputs,kind', HEAD_LOSSES)
def test_loss_weight_scales_linearly(name, kwargs, make_inputs, kind):
    student, teacher = make_inputs()
    base = MODELS.build(dict(type=name, **kwargs))(student, teacher)
    scaled = MODELS.build(dict(type=name, loss_weight=0.3, **kwargs))(student, teacher)
    assert base.item() > 0
    torch.testing.assert_close(scaled, base * 0.3)


@pytest.mark.parametrize('name,kwargs,make_inputs,kind', HEAD_LOSSES)
def test_shape_mismatch_names_both_shapes(name, kwargs, make_inputs, kind):
    loss = MODELS.build(dict(type=name, **kwargs))
    student, teacher = make_inputs()
    with pytest.raises(ValueError) as err:
        loss(student[:5], teacher)
    assert str(tuple(student[:5].shape)) in str(err.value)
    assert str(tuple(teacher.shape)) in str(err.value)
    with pytest.raises(ValueError, match=r'weight of shape \(M,\) = \(6,\), got \(6, 1\)'):
        loss(student, teacher, torch.ones(6, 1))


@pytest.mark.parametrize('name,kwargs,make_inputs,kind', HEAD_LOSSES)
def test_no_items_give_a_zero_that_keeps_the_graph(name, kwargs, make_inputs, kind):
    student, teacher = make_inputs(m=0)
    student.requires_grad_()
    value = MODELS.build(dict(type=name, **kwargs))(student, teacher, torch.ones(0))
    assert value.item() == 0.0 and value.requires_grad
    value.backward()
    assert student.grad.shape == student.shape


@pytest.mark.parametrize('name,kwargs,make_inputs,kind', HEAD_LOSSES)
def test_all_zero_weights_give_zero(name, kwargs, make_inputs, kind):
    student, teacher = make_inputs()
    student.requires_grad_()
    value = MODELS.build(dict(type=name, **kwargs))(student, teacher, torch.zeros(6))
    value.backward()
    assert value.item() == 0.0
    assert torch.equal(student.grad, torch.zeros_like(student))


# ------------------------------------------------------------------------ ClassificationKDLoss

# One item, K = 2. Class 0: target sigmoid(ln 3) = 3/4, prediction sigmoid(0) = 1/2,
# BCE = -(3/4 ln 1/2 + 1/4 ln 1/2) = ln 2. Class 1: target 1/2, prediction 3/4,
# BCE = -(1/2 ln 3/4 + 1/2 ln 1/4).
SIGMOID_BCE = math.log(2) - (0.5 * math.log(0.75) + 0.5 * math.log(0.25))
# KL((1/4, 3/4) || (1/2, 1/2))
SOFTMAX_KL = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)


def test_cls_sigmoid_hand_computed():
    student, teacher = torch.tensor([[0., LN3]]), torch.tensor([[LN3, 0.]])
    assert ClassificationKDLoss()(student, teacher).item() == pytest.approx(SIGMOID_BCE)


def test_cls_sigmoid_weighted_average_over_items():
    # Item 1 has equal zero logits: BCE of 1/2 against 1/2 is ln 2 per class, 2 ln 2 in all.
    student = torch.tensor([[0., LN3], [0., 0.]])
    teacher = torch.tensor([[LN3, 0.], [0., 0.]])
    expected = (1 * SIGMOID_BCE + 3 * 2 * math.log(2)) / (1 + 3)
    for weight in ([1., 3.], [0.01, 0.03]):  # only the weights' ratio matters
        value = ClassificationKDLoss()(student, teacher, torch.tensor(weight))
        assert value.item() == pytest.approx(expected)


@pytest.mark.parametrize('mode,single_item_loss', [('sigmoid', SIGMOID_BCE),
                                                   ('softmax', SOFTMAX_KL)])
def test_cls_temperature_divides_logits_and_multiplies_by_t_squared(mode, single_item_loss):
    # Logits doubled at T = 2 give the T = 1 probabilities; the loss is then scaled by 4.
    if mode == 'sigmoid':
        student, teacher = torch.tensor([[0., LN3]]), torch.tensor([[LN3, 0.]])
    else:
        student, teacher = torch.tensor([[0., 0.]]), torch.tensor([[0., LN3]])
    value = ClassificationKDLoss(mode=mode, temperature=2.0)(student * 2, teacher * 2)
    assert value.item() == pytest.approx(4 * single_item_loss)


def test_cls_softmax_is_the_kl_of_teacher_to_student():
    student = torch.tensor([[0., 0.], [2., -1.]])
    teacher = torch.tensor([[0., LN3], [2., -1.]])  # item 1 agrees: KL 0
    value = ClassificationKDLoss(mode='softmax')(student, teacher)
    assert value.item() == pytest.approx(SOFTMAX_KL / 2)
    # The direction matters: KL((1/2, 1/2) || (1/4, 3/4)) is another number.
    reverse = ClassificationKDLoss(mode='softmax')(teacher, student)
    assert reverse.item() == pytest.approx(
        (0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)) / 2)


def test_cls_sigmoid_has_zero_gradient_when_student_equals_teacher():
    teacher = torch.randn(5, 3)
    student = teacher.clone().requires_grad_()
    value = ClassificationKDLoss(mode='sigmoid', temperature=2.0)(student, teacher)
    value.backward()
    assert value.item() > 0  # the target's entropy
    torch.testing.assert_close(student.grad, torch.zeros_like(student))


def test_cls_softmax_is_zero_when_student_equals_teacher():
    teacher = torch.randn(5, 3)
    assert ClassificationKDLoss(mode='softmax')(teacher.clone(), teacher).item() == \
        pytest.approx(0.0, abs=1e-6)


def test_cls_invalid_arguments_are_explained():
    with pytest.raises(ValueError, match=r"one of \('sigmoid', 'softmax'\).*got 'softmx'"):
        ClassificationKDLoss(mode='softmx')
    with pytest.raises(ValueError, match='positive temperature, got -1'):
        ClassificationKDLoss(temperature=-1)


# -------------------------------------------------------------------------- BoxRegressionKDLoss

# Student [0, 0, 2, 2] against teacher [1, 1, 3, 3]: intersection 1, union 4 + 4 - 1 = 7,
# enclosing box 3 x 3 = 9, GIoU = 1/7 - (9 - 7)/9 = -5/63, so 1 - GIoU = 68/63.
# Every coordinate is off by 1 px; the teacher box is 2 x 2, so the normalised L1 is 1/2.
SQUARES = torch.tensor([[0., 0., 2., 2.]]), torch.tensor([[1., 1., 3., 3.]])


@pytest.mark.parametrize('kwargs,expected', [
    (dict(l1_weight=0.0, giou_weight=1.0), 68 / 63),
    (dict(l1_weight=1.0, giou_weight=0.0), 0.5),
    (dict(l1_weight=1.0, giou_weight=0.0, normalize_l1=False), 1.0),
    ({}, 1.0 * 0.5 + 2.0 * 68 / 63),
])
def test_box_hand_computed_giou_and_l1(kwargs, expected):
    assert BoxRegressionKDLoss(**kwargs)(*SQUARES).item() == pytest.approx(expected)


def test_box_l1_is_normalised_by_the_teacher_width_and_height():
    # Teacher 4 px wide and 2 px high; x1 off by 2 px, y1 by 1 px: (2/4 + 1/2 + 0 + 0) / 4.
    student, teacher = torch.tensor([[2., 1., 4., 2.]]), torch.tensor([[0., 0., 4., 2.]])
    loss = BoxRegressionKDLoss(l1_weight=1.0, giou_weight=0.0)
    assert loss(student, teacher).item() == pytest.approx(0.25)


def test_box_weighted_average_over_items():
    student = torch.cat([SQUARES[0], torch.tensor([[5., 5., 9., 8.]])])
    teacher = torch.cat([SQUARES[1], torch.tensor([[5., 5., 9., 8.]])])  # item 1 agrees: 0
    expected = (0.5 + 2.0 * 68 / 63) / (1 + 3)
    for weight in ([1., 3.], [0.01, 0.03]):  # only the weights' ratio matters
        value = BoxRegressionKDLoss()(student, teacher, torch.tensor(weight))
        assert value.item() == pytest.approx(expected)


@pytest.mark.parametrize('normalize_l1', [True, False])
def test_box_zero_when_student_equals_teacher(normalize_l1):
    _, teacher = random_boxes()
    loss = BoxRegressionKDLoss(normalize_l1=normalize_l1)
    assert loss(teacher.clone(), teacher).item() == pytest.approx(0.0, abs=1e-6)


def test_box_rejects_boxes_without_four_coordinates():
    with pytest.raises(ValueError, match=r'shape \(M, 4\).*got \(3, 5\)'):
        BoxRegressionKDLoss()(torch.rand(3, 5), torch.rand(3, 5))
