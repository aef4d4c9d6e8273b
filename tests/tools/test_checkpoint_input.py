"""The checkpoint given to tools/test.py and tools/export_student.py: a truncated file or a
directory is one clear line (no traceback), and tools/test.py evaluates the student of a
distiller checkpoint without the teacher's checkpoint."""
import os.path as osp

import pytest
import torch
from mmengine.runner import save_checkpoint

from conftest import (TEACHER_CONFIG, run_tool, save_random_teacher_checkpoint,
                      write_tiny_dfkd_config, write_tiny_teacher_config)


@pytest.fixture(scope='module')
def files(tiny_shapes_root, tmp_path_factory) -> dict:
    """A teacher config, a distiller config, a truncated checkpoint and a work dir."""
    root = tmp_path_factory.mktemp('checkpoint_input')
    teacher_ckpt = save_random_teacher_checkpoint(str(root / 'teacher.pth'))
    truncated = root / 'truncated.pth'
    truncated.write_bytes(open(teacher_ckpt, 'rb').read()[:4096])
    work_dir = root / 'work'
    work_dir.mkdir()
    for step in (2, 4):
        save_checkpoint(dict(state_dict=dict(w=torch.ones(4))), str(work_dir / f'iter_{step}.pth'))
    return dict(
        root=root, teacher_ckpt=teacher_ckpt, truncated=str(truncated), work_dir=str(work_dir),
        teacher_config=write_tiny_teacher_config(tiny_shapes_root, str(root / 'teacher.py')),
        dfkd_config=write_tiny_dfkd_config(tiny_shapes_root, teacher_ckpt, str(root / 'dfkd.py')))


@pytest.mark.parametrize('tool', ['test', 'export'])
@pytest.mark.parametrize('checkpoint, expected', [
    ('truncated', 'truncated.pth is not a complete PyTorch checkpoint (File is not a zip file): '
                  'the file is truncated'),
    ('work_dir', 'work is a directory, not a checkpoint file; it holds iter_4.pth, iter_2.pth')])
def test_a_bad_checkpoint_is_one_line(files, tmp_path, tool, checkpoint, expected):
    if tool == 'test':
        args = ['tools/test.py', files['teacher_config'], files[checkpoint],
                '--work-dir', str(tmp_path / 'test')]
    else:
        args = ['tools/export_student.py', files['dfkd_config'], files[checkpoint],
                '--out', str(tmp_path / 'export')]
    result = run_tool(args)
    assert result.returncode != 0
    assert 'Traceback' not in result.stderr, result.stderr[-3000:]
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert expected in result.stderr and result.stderr.startswith('Checkpoint '), result.stderr
    assert not osp.exists(tmp_path / 'test') and not osp.exists(tmp_path / 'export')


def test_student_of_a_distiller_is_evaluated_without_the_teacher_checkpoint(files, tmp_path):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    from mmdfkd.utils import load_config
    register_all_modules()
    cfg = load_config(files['dfkd_config'])
    cfg.model.teachers[0].config = TEACHER_CONFIG
    cfg.model.probe_shape = (128, 128)
    torch.manual_seed(0)
    distiller = MODELS.build(cfg.model)
    checkpoint = str(tmp_path / 'iter_4.pth')
    save_checkpoint(dict(state_dict=distiller.state_dict(), meta=dict(iter=4)), checkpoint)
    assert all(k.startswith('student.') for k in distiller.state_dict())  # named by the distiller

    missing = str(tmp_path / 'gone' / 'teacher.pth')
    cfg.model.teachers[0].checkpoint = missing
    config = str(tmp_path / 'dfkd_no_teacher.py')
    cfg.dump(config)
    result = run_tool(['tools/test.py', config, checkpoint, '--work-dir', str(tmp_path / 'w')])
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert f'Loaded the student of {checkpoint}' in output
    assert 'coco/bbox_mAP' in output
    assert 'unexpected key' not in output and 'missing keys' not in output
