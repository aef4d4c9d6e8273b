"""Every shipped config names its teacher configs so that they are found from any working
directory, the way mmdet's own tools load a config (``Config.fromfile``, no help from this
project's tools)."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

from conftest import REPO_ROOT
from mmdfkd.models.distillers.teacher_loader import resolve_teacher_config

CONFIGS = sorted(glob.glob(osp.join(REPO_ROOT, 'configs', '**', '*.py'), recursive=True))


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: osp.relpath(p, REPO_ROOT))
def test_teacher_configs_resolve_from_another_working_directory(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = Config.fromfile(path).get('model', {})  # a _base_ piece may have none
    teachers = model.get('teachers', [])
    for teacher in [teachers] if isinstance(teachers, dict) else teachers:
        assert '::' in teacher.config or osp.isabs(teacher.config), teacher.config
        assert resolve_teacher_config(teacher.config).type in ('RetinaNet', 'FasterRCNN')
