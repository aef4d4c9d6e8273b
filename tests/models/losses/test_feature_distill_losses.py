"""Feature-level distillation losses: FeatureMSELoss, ChannelWiseDistillLoss, PKDLoss."""
import math

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules

from mmdfkd.models.losses import ChannelWiseDistillLoss, FeatureMSELoss, PKDLoss

register_all_modules()

# (registered type, extra init args) of every configuration the shared properties are checked on.
FEATURE_LOSSES = [
    pytest.param('FeatureMSELoss', {}, id='mse'),
    pytest.param('FeatureMSELoss', dict(normalize=True), id='mse-normalize'),
    pytest.param('ChannelWiseDistillLoss', dict(temperature=2.0), id='cwd'),
    pytest.param('PKDLoss', {}, id='pkd'),
]
LOSS_CLASSES = {'FeatureMSELoss': FeatureMSELoss, 'ChannelWiseDistillLoss': ChannelWiseDistillLoss,
                'PKDLoss': PKDLoss}


@pytest.fixture(autouse=True)
def seed():
    torch.manual_seed(0)


def maps(*values, shape=None):
    """A float map from nested values, optionally reshaped."""
    x = torch.tensor(values, dtype=torch.float32)
    return x.reshape(shape) if shape else x


# ---------------------------------------------------------------- properties shared by all three


@pytest.mark.parametrize('name,kwargs', FEATURE_LOSSES)
def test_registered_builds_the_class_and_declares_feature_input(name, kwargs):
    loss = MODELS.build(dict(type=name, **kwargs))
    assert type(loss) is LOSS_CLASSES[name]
    assert loss.input_kind == 'feature'


@pytest.mark.parametrize('name,kwargs', FEATURE_LOSSES)
def test_zero_when_student_equals_teacher(name, kwargs):
    loss = MODELS.build(dict(type=name, **kwargs))
    x = torch.randn(2, 3, 4, 5)
    assert loss(x, x.clone()).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize('name,kwargs', FEATURE_LOSSES)
def test_gradient_reaches_the_student_and_not_the_teacher(name, kwargs):
    loss = MODELS.build(dict(type=name, **kwargs))
    student = torch.randn(2, 3, 4, 5, requires_grad=True)
    teacher = torch.randn(2, 3, 4, 5, requires_grad=True)
    value = loss(student, teacher)
    assert value.dim() == 0
    value.backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None


@pytest.mark.parametrize('name,kwargs', FEATURE_LOSSES)
def test_loss_weight_scales_linearly(name, kwargs):
    student, teacher = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5)
    base = MODELS.build(dict(type=name, **kwargs))(student, teacher)
    scaled = MODELS.build(dict(type=name, loss_weight=2.5, **kwargs))(student, teacher)
    assert base.item() > 0
    torch.testing.assert_close(scaled, base * 2.5)


@pytest.mark.parametrize('name,kwargs', FEATURE_LOSSES)
def test_channel_mismatch_names_both_shapes(name, kwargs):
    loss = MODELS.build(dict(type=name, **kwargs))
    with pytest.raises(ValueError) as err:
        loss(torch.randn(2, 3, 4, 4), torch.randn(2, 5, 4, 4))
    assert '(2, 3, 4, 4)' in str(err.value) and '(2, 5, 4, 4)' in str(err.value)


@pytest.mark.parametrize('name', ['FeatureMSELoss', 'ChannelWiseDistillLoss'])
def test_spatial_mismatch_names_both_shapes_unless_pkd(name):
    loss = MODELS.build(dict(type=name))
    with pytest.raises(ValueError) as err:
        loss(torch.randn(1, 3, 4, 4), torch.randn(1, 3, 8, 8))
    assert '(1, 3, 4, 4)' in str(err.value) and '(1, 3, 8, 8)' in str(err.value)


# ------------------------------------------------------------------------------- FeatureMSELoss


def test_mse_hand_computed():
    student = maps([1., 2.], [3., 4.], shape=(1, 1, 2, 2))
    teacher = maps([1., 0.], [0., 0.], shape=(1, 1, 2, 2))
    # squared errors 0, 4, 9, 16 -> mean 29 / 4
    assert FeatureMSELoss()(student, teacher).item() == pytest.approx(29 / 4)


def test_mse_weighted_by_a_foreground_map():
    # N=1, C=2, H=1, W=2; teacher zero, so squared errors are the student's squares.
    student = maps([[1., 2.]], [[3., 0.]], shape=(1, 2, 1, 2))
    teacher = torch.zeros(1, 2, 1, 2)
    weight = maps(1.0, 0.25, shape=(1, 1, 1, 2))  # foreground at x=0, background 0.25 at x=1
    # position 0: 1 + 9 = 10 (w 1); position 1: 4 + 0 = 4 (w 0.25)
    # (1 * 10 + 0.25 * 4) / (C * (1 + 0.25)) = 11 / 2.5
    assert FeatureMSELoss()(student, teacher, weight).item() == pytest.approx(11 / 2.5)
    # A uniform weight map gives back the plain mean.
    torch.testing.assert_close(FeatureMSELoss()(student, teacher, torch.full_like(weight, 3.0)),
                               FeatureMSELoss()(student, teacher))


def test_mse_all_zero_weights_give_zero_with_a_finite_gradient():
    student = torch.randn(1, 2, 3, 3, requires_grad=True)
    weight = torch.zeros(1, 1, 3, 3, requires_grad=True)
    value = FeatureMSELoss()(student, torch.randn(1, 2, 3, 3), weight)
    value.backward()
    assert value.item() == 0.0
    assert torch.equal(student.grad, torch.zeros_like(student))
    assert weight.grad is None


def test_mse_weight_of_the_wrong_shape_is_explained():
    with pytest.raises(ValueError, match=r'weight of shape \(N, 1, H, W\) = \(1, 1, 2, 2\), '
                                         r'got \(1, 2, 2, 2\)'):
        FeatureMSELoss()(torch.randn(1, 2, 2, 2), torch.randn(1, 2, 2, 2),
                         torch.ones(1, 2, 2, 2))


def test_mse_normalize_compares_directions_per_position():
    # N=1, C=2, H=1, W=2. Position 0: s=(3, 4), t=(1, 0), cos = 0.6 -> 2 - 2 * 0.6 = 0.8.
    # Position 1: s=(0, 2), t=(0, 5), same direction -> 0. Mean over positions: 0.4.
    student = maps([[3., 0.]], [[4., 2.]], shape=(1, 2, 1, 2))
    teacher = maps([[1., 0.]], [[0., 5.]], shape=(1, 2, 1, 2))
    assert FeatureMSELoss(normalize=True)(student, teacher).item() == pytest.approx(0.4)
    # Raw MSE would see the magnitude gap at position 1.
    assert FeatureMSELoss()(student, teacher).item() == pytest.approx((4 + 0 + 16 + 9) / 4)


# ----------------------------------------------------------------------- ChannelWiseDistillLoss


def test_cwd_hand_computed_and_averaged_over_channels():
    # N=1, C=2, H=1, W=2. Channel 0: teacher softmax([0, ln 3]) = (1/4, 3/4), student
    # softmax([0, 0]) = (1/2, 1/2). Channel 1: identical maps, KL 0.
    student = maps([[0., 0.]], [[1., 5.]], shape=(1, 2, 1, 2))
    teacher = maps([[0., math.log(3)]], [[1., 5.]], shape=(1, 2, 1, 2))
    kl = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert ChannelWiseDistillLoss()(student, teacher).item() == pytest.approx(kl / 2)


def test_cwd_temperature_divides_logits_and_multiplies_by_its_square():
    # With T = 2 the teacher [0, 2 ln 3] has the same softmax as [0, ln 3] at T = 1.
    student = torch.zeros(1, 1, 1, 2)
    teacher = maps([[0., 2 * math.log(3)]], shape=(1, 1, 1, 2))
    kl = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert ChannelWiseDistillLoss(temperature=2.0)(student, teacher).item() == pytest.approx(4 * kl)


def test_cwd_rejects_a_weight_map_and_a_bad_temperature():
    x = torch.randn(1, 2, 3, 3)
    with pytest.raises(ValueError, match="teacher's own spatial softmax"):
        ChannelWiseDistillLoss()(x, x, torch.ones(1, 1, 3, 3))
    with pytest.raises(ValueError, match='positive temperature, got 0'):
        ChannelWiseDistillLoss(temperature=0)


# ---------------------------------------------------------------------------------------- PKDLoss


@pytest.mark.parametrize('teacher_values,expected', [
    # Both channels already have mean 0 and population std 1, so they normalise to themselves
    # (up to the 1e-6 in the std). Squared differences 0, 4, 4, 0 -> mean 2 -> / 2 = 1.
    ([1., 1., -1., -1.], 1.0),
    # Teacher = -student: differences 2, 2, 2, 2 -> squared mean 4 -> / 2 = 2.
    ([-1., 1., -1., 1.], 2.0),
])
def test_pkd_hand_computed(teacher_values, expected):
    student = maps(1., -1., 1., -1., shape=(1, 1, 2, 2))
    teacher = maps(*teacher_values, shape=(1, 1, 2, 2))
    assert PKDLoss()(student, teacher).item() == pytest.approx(expected / (1 + 1e-6)**2)


def test_pkd_normalises_each_channel_over_batch_and_positions():
    student = maps(0., 0., 0., 4., shape=(1, 1, 2, 2))  # mean 1, var (1 + 1 + 1 + 9) / 4 = 3
    normalized = PKDLoss.normalize(student)
    torch.testing.assert_close(normalized, maps(-1., -1., -1., 3., shape=(1, 1, 2, 2)) / 3**0.5)
    # Statistics are shared by the batch: with sample 1 = sample 0 + 2 the values
    # 0, 0, 0, 4, 2, 2, 2, 6 have mean 2 and std sqrt(32 / 8) = 2.
    batch = torch.cat([student, student + 2])
    torch.testing.assert_close(PKDLoss.normalize(batch),
                               maps(-1., -1., -1., 1., 0., 0., 0., 2., shape=(2, 1, 2, 2)))


def test_pkd_is_invariant_to_an_affine_change_of_a_teacher_channel():
    student, teacher = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    base = PKDLoss()(student, teacher)
    affine = teacher.clone()
    affine[:, 1] = affine[:, 1] * 7.0 + 3.0
    torch.testing.assert_close(PKDLoss()(student, affine), base, rtol=1e-5, atol=1e-6)
    # Flipping the channel's sign, or shifting it in one sample only, is not invariant.
    flipped = teacher.clone()
    flipped[:, 1] *= -1
    assert PKDLoss()(student, flipped).item() != pytest.approx(base.item(), rel=1e-3)
    one_sample = teacher.clone()
    one_sample[0, 1] += 3.0
    assert PKDLoss()(student, one_sample).item() != pytest.approx(base.item(), rel=1e-3)


def test_pkd_resizes_the_student_bilinearly_to_the_teacher():
    # Bilinear (align_corners=False) upsampling of [0, 1] to width 4 samples source x at
    # -0.25, 0.25, 0.75, 1.25 (clamped to the borders): [0, 0.25, 0.75, 1].
    student = maps(0., 1., shape=(1, 1, 1, 2)).requires_grad_()
    teacher = maps(0., 0.25, 0.75, 1., shape=(1, 1, 1, 4))
    assert PKDLoss()(student, teacher).item() == pytest.approx(0.0, abs=1e-6)
    # align_corners=True would give [0, 1/3, 2/3, 1]: not a match.
    assert PKDLoss()(student, maps(0., 1 / 3, 2 / 3, 1., shape=(1, 1, 1, 4))).item() > 1e-4
    value = PKDLoss()(student, maps(1., 0., 0., 1., shape=(1, 1, 1, 4)))
    value.backward()
    assert student.grad.shape == (1, 1, 1, 2) and student.grad.abs().sum() > 0


def test_pkd_resize_stu_false_resizes_the_teacher_instead():
    student = maps(0., 0.25, 0.75, 1., shape=(1, 1, 1, 4)).requires_grad_()
    teacher = maps(0., 1., shape=(1, 1, 1, 2))
    assert PKDLoss(resize_stu=False)(student, teacher).item() == pytest.approx(0.0, abs=1e-6)
    PKDLoss(resize_stu=False)(student, maps(1., 0., shape=(1, 1, 1, 2))).backward()
    assert student.grad.abs().sum() > 0


def test_pkd_rejects_a_weight_map_and_a_batch_mismatch():
    with pytest.raises(ValueError, match='takes no weight map'):
        PKDLoss()(torch.randn(1, 2, 3, 3), torch.randn(1, 2, 3, 3), torch.ones(1, 1, 3, 3))
    with pytest.raises(ValueError) as err:
        PKDLoss()(torch.randn(2, 3, 4, 4), torch.randn(1, 3, 8, 8))
    assert '(2, 3, 4, 4)' in str(err.value) and '(1, 3, 8, 8)' in str(err.value)
