"""The student of a distiller as a detector of its own: built from student_model_config and
loaded with student_weights, it predicts exactly what the distiller predicts."""
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.utils import register_all_modules

import mmdfkd  # noqa: F401
from conftest import DFKD_CONFIG, TEACHER_CONFIG, save_random_teacher_checkpoint
from mmdfkd.utils import (is_distiller_config, load_config, student_model_config,
                          student_weights, weights_fit_problem)


def _batch(size: int = 128) -> dict:
    """Two uint8 images as a dataloader gives them, with their meta information."""
    generator = torch.Generator().manual_seed(0)
    inputs = [torch.randint(0, 256, (3, size, size), dtype=torch.uint8, generator=generator)
              for _ in range(2)]
    samples = [DetDataSample(metainfo=dict(img_id=i, img_shape=(size, size),
                                           ori_shape=(size, size), scale_factor=(1., 1.)))
               for i in range(2)]
    return dict(inputs=inputs, data_samples=samples)


def test_student_predicts_as_the_distiller(tmp_path):
    register_all_modules()
    cfg = load_config(DFKD_CONFIG)
    teacher = save_random_teacher_checkpoint(str(tmp_path / 'teacher.pth'))
    cfg.model.teachers[0].update(config=TEACHER_CONFIG, checkpoint=teacher)
    cfg.model.probe_shape = (128, 128)
    cfg.model.student.test_cfg.score_thr = 0.0
    # A preprocessor of the distiller's own, with another mean than the student's.
    cfg.model.data_preprocessor = dict(cfg.model.student.data_preprocessor,
                                       mean=[100., 110., 120.])
    assert is_distiller_config(cfg.model) and not is_distiller_config(cfg.model.student)
    torch.manual_seed(0)
    distiller = MODELS.build(cfg.model).eval()
    checkpoint = dict(state_dict=distiller.state_dict(), meta=dict(iter=4))

    student = MODELS.build(student_model_config(cfg.model)).eval()
    weights = student_weights(checkpoint)
    assert weights_fit_problem(student, weights) is None
    student.load_state_dict(weights)
    assert list(student.data_preprocessor.mean.flatten()) == [100., 110., 120.]

    with torch.no_grad():
        expected = distiller.test_step(_batch())
        got = student.test_step(_batch())
    for want, have in zip(expected, got):
        assert len(want.pred_instances) > 0
        for key in ('bboxes', 'scores', 'labels'):
            assert torch.equal(want.pred_instances[key], have.pred_instances[key]), key


def test_a_checkpoint_without_student_weights_does_not_fit(tmp_path):
    register_all_modules()
    cfg = load_config(DFKD_CONFIG)
    student = MODELS.build(student_model_config(cfg.model))
    teacher = torch.load(save_random_teacher_checkpoint(str(tmp_path / 'teacher.pth')),
                         weights_only=True)
    assert student_weights(teacher) == {}
    problem = weights_fit_problem(student, student_weights(teacher))
    assert problem.startswith(f'{len(student.state_dict())} of the model\'s '
                              f'{len(student.state_dict())} weights missing')
