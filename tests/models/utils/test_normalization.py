"""normalize_like / denormalize / renormalize: a detector's input from loader-space images and
back, as its own data preprocessor would make it."""
import torch
from mmdet.models.data_preprocessors import DetDataPreprocessor

from mmdfkd.models.utils import denormalize, normalize_like, renormalize


def _preprocessor(**kwargs) -> DetDataPreprocessor:
    cfg = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True,
               pad_size_divisor=32)
    cfg.update(kwargs)
    return DetDataPreprocessor(**cfg)


def test_normalize_like_flips_normalizes_and_pads_by_hand():
    pre = _preprocessor(mean=[10., 20., 30.], std=[2., 4., 5.], pad_value=7)
    images = torch.zeros(1, 3, 30, 40)
    images[:, 0], images[:, 1], images[:, 2] = 100., 60., 50.  # B, G, R
    out = normalize_like(images, pre)
    assert out.shape == (1, 3, 32, 64)
    # RGB order: R (50 - 10) / 2, G (60 - 20) / 4, B (100 - 30) / 5
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([20., 10., 14.]))
    assert (out[..., 30:, :] == 7).all() and (out[..., :, 40:] == 7).all()


def test_normalize_like_equals_the_preprocessor_itself():
    pre = _preprocessor()
    image = torch.randint(0, 256, (3, 50, 70), dtype=torch.uint8)
    expected = pre(dict(inputs=[image]), False)['inputs']
    torch.testing.assert_close(normalize_like(image[None].float(), pre), expected)


def test_denormalize_undoes_normalize_like_and_renormalize_maps_between_preprocessors():
    student = _preprocessor()
    teacher = _preprocessor(mean=[0., 0., 0.], std=[255., 255., 255.], bgr_to_rgb=False,
                            pad_size_divisor=64)
    images = torch.rand(2, 3, 64, 96) * 255
    student_inputs = normalize_like(images, student)
    torch.testing.assert_close(denormalize(student_inputs, student), images, rtol=0, atol=1e-4)
    teacher_inputs = renormalize(student_inputs, student, teacher)
    assert teacher_inputs.shape == (2, 3, 64, 128)  # padded to the teacher's divisor
    torch.testing.assert_close(teacher_inputs, normalize_like(images, teacher), rtol=0,
                               atol=1e-6)
    torch.testing.assert_close(renormalize(teacher_inputs, teacher, student)[..., :96],
                               student_inputs, rtol=0, atol=1e-5)
