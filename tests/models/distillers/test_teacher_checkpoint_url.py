"""A teacher entry's optional ``checkpoint_url`` reaches the missing-checkpoint error, with the
config key to change."""
import pytest
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules

import mmdfkd  # noqa: F401
from distill_fixtures import student_model_cfg, teacher_model_cfg


@pytest.mark.parametrize('as_list, key', [(True, 'model.teachers.0.checkpoint'),
                                          (False, 'model.teachers.checkpoint')])
def test_missing_checkpoint_error_names_url_and_key(tmp_path, as_list, key):
    register_all_modules()
    url = 'https://download.example.org/teacher_r18.pth'
    teacher = dict(config=teacher_model_cfg(), checkpoint=str(tmp_path / 'teacher_r18.pth'),
                   checkpoint_url=url)
    cfg = dict(type='DetectionDistiller', student=student_model_cfg(),
               teachers=[teacher] if as_list else teacher)
    with pytest.raises(FileNotFoundError) as info:
        MODELS.build(cfg)
    message = str(info.value)
    assert 'teacher_r18.pth' in message and f'Download it from {url}' in message
    assert f'--cfg-options {key}=PATH' in message
