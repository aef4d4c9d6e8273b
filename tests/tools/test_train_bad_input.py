"""Bad input to tools/train.py: each case exits non-zero with a message that says what is wrong
and what to change, and leaves the good checkpoint already in the work dir untouched."""
import os
import os.path as osp
from typing import Callable, List, Tuple

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import save_checkpoint

from conftest import REPO_ROOT, run_tool, save_random_teacher_checkpoint
from reliability_helpers import IMPORT_ENV, small_dfkd_config, with_helpers


class _TouchFile:
    """Unpickling this object would run ``os.system('touch PATH')``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return os.system, (f'touch {self.path}', )


@pytest.fixture(scope='module')
def setup(tiny_shapes_root, tmp_path_factory) -> dict:
    """A small data-free config and its random teacher checkpoint."""
    root = tmp_path_factory.mktemp('bad_input')
    teacher_ckpt = save_random_teacher_checkpoint(str(root / 'teacher.pth'))
    config = str(root / 'dfkd.py')
    small_dfkd_config(tiny_shapes_root, teacher_ckpt, config)
    return dict(root=root, teacher_ckpt=teacher_ckpt, config=config)


def _missing_teacher_checkpoint(s: dict) -> Tuple[List[str], List[str]]:
    return (['--cfg-options', f'model.teachers.0.checkpoint={s["root"]}/missing.pth'],
            ['missing.pth', 'does not exist', '--cfg-options model.teachers.0.checkpoint='])


def _teacher_config_not_found(s: dict):
    return (['--cfg-options', 'model.teachers.0.config=./no_such_teacher.py'],
            ["Teacher config './no_such_teacher.py' was not found", 'Give a path relative to '
             'the config file'])


def _checkpoint_keys_do_not_match(s: dict):
    path = str(s['root'] / 'other_model.pth')
    torch.save(dict(state_dict=torch.nn.Linear(3, 2).state_dict()), path)
    return (['--cfg-options', f'model.teachers.0.checkpoint={path}'],
            ['other_model.pth', 'does not match the teacher config', 'unexpected keys',
             'Check that the checkpoint was trained with this teacher config'])


def _truncated_teacher_checkpoint(s: dict):
    path = s['root'] / 'truncated.pth'
    path.write_bytes(open(s['teacher_ckpt'], 'rb').read()[:4096])
    return (['--cfg-options', f'model.teachers.0.checkpoint={path}'],
            ['truncated.pth', 'is truncated', 'Give a complete .pth file from a trusted source: '
             '--cfg-options model.teachers.0.checkpoint=PATH'])


def _unsafe_teacher_checkpoint(s: dict):
    path = str(s['root'] / 'evil_teacher.pth')
    torch.save(dict(state_dict={}, meta=_TouchFile(str(s['root'] / 'pwned_teacher'))), path)
    return (['--cfg-options', f'model.teachers.0.checkpoint={path}'],
            ['evil_teacher.pth', 'not allowed to be loaded',
             'do not load the file with weights_only=False'])


def _class_count_mismatch(s: dict):
    return (['--cfg-options', 'model.student.bbox_head.num_classes=3'],
            ['Teacher 0 predicts 6 classes but the student 3', 'class_mapping'])


def _image_size_the_student_cannot_take(s: dict):
    cfg = Config.fromfile(s['config'])
    student = cfg.model.student
    student.backbone = dict(type='FixedSizeViT', img_size=128,
                            embed_dim=student.neck.in_channels)
    cfg.model.distill_losses = []
    cfg.optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4))
    cfg.custom_hooks[0].synthesizer.loss.adi_weight = 0.
    cfg.train_dataloader.dataset.img_size = (96, 96)
    path = str(s['root'] / 'fixed_size_student.py')
    with_helpers(cfg).dump(path)
    return (['--config', path],
            ['cannot take the synthetic images of 96x96 pixels',
             "AssertionError: Input height (96) doesn't match model (128)",
             'train_dataloader.dataset.img_size=(H, W)'])


def _resume_from_a_truncated_checkpoint(s: dict):
    torn = s['work_dir'] / 'iter_4.pth'  # as a save killed half way would leave it
    data = open(s['good'], 'rb').read()
    torn.write_bytes(data[:len(data) // 2])
    return (['--resume', str(torn)],
            ['cannot resume', 'iter_4.pth is not a complete PyTorch checkpoint',
             f'Resume from {s["good"]} instead'])


def _option_that_changes_nothing(s: dict):
    # mmengine substituted the variable when it parsed the file: the option would be ignored.
    config = osp.join(REPO_ROOT, 'configs', 'demo', 'dfkd_deit_tiny_shapes.py')
    return (['--config', config, '--cfg-options', 'teacher_checkpoint=/elsewhere/teacher.pth'],
            ['--cfg-options teacher_checkpoint=/elsewhere/teacher.pth changes nothing',
             'Set those keys instead: --cfg-options '
             'model.teachers.0.checkpoint=/elsewhere/teacher.pth'])


def _resume_from_an_unsafe_checkpoint(s: dict):
    path = str(s['root'] / 'evil_resume.pth')
    torch.save(dict(state_dict={}, meta=_TouchFile(str(s['root'] / 'pwned_resume'))), path)
    return (['--resume', path],
            ['evil_resume.pth holds pickled objects that are not allowed to be loaded'])


def _resume_from_a_directory(s: dict):
    return (['--resume', str(s['work_dir'])],
            [f'{s["work_dir"]} is a directory, not a checkpoint file; it holds iter_2.pth'])


def _resume_from_a_checkpoint_of_another_config(s: dict):
    # The teacher's checkpoint given to the distiller config: mmengine would load none of its
    # weights, then fail on the optimizer's parameter groups with a traceback.
    return (['--resume', s['teacher_ckpt']],
            [f'Cannot resume from {s["teacher_ckpt"]}: its weights do not fit the model of '
             f'{s["config"]}', 'weights missing (e.g. student.',
             'Resume with the config it was trained with'])


@pytest.mark.parametrize('case', [
    _missing_teacher_checkpoint, _teacher_config_not_found, _checkpoint_keys_do_not_match,
    _truncated_teacher_checkpoint, _unsafe_teacher_checkpoint, _class_count_mismatch,
    _image_size_the_student_cannot_take, _option_that_changes_nothing,
    _resume_from_a_truncated_checkpoint,
    _resume_from_an_unsafe_checkpoint, _resume_from_a_directory,
    _resume_from_a_checkpoint_of_another_config], ids=lambda case: case.__name__.strip('_'))
def test_bad_input_is_a_clear_error_and_overwrites_nothing(setup, tmp_path, case: Callable):
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    good = str(work_dir / 'iter_2.pth')
    save_checkpoint(dict(state_dict=dict(w=torch.ones(4)), meta=dict(iter=2)), good)
    (work_dir / 'last_checkpoint').write_text(good)
    args, expected = case(dict(setup, work_dir=work_dir, good=good))
    config = setup['config']
    if args[0] == '--config':
        config, args = args[1], args[2:]
    kept = {name: (open(work_dir / name, 'rb').read(), os.stat(work_dir / name).st_mtime_ns)
            for name in os.listdir(work_dir)}

    result = run_tool(['tools/train.py', config, '--work-dir', str(work_dir), *args],
                      env=IMPORT_ENV)

    assert result.returncode != 0
    output = result.stdout + result.stderr
    for fragment in expected:
        assert fragment in output, (fragment, output[-3000:])
    if args[:1] == ['--resume'] or case is _option_that_changes_nothing:
        # found before anything is built: a message, not a traceback
        assert 'Traceback' not in output, output[-3000:]
    assert {name: (open(work_dir / name, 'rb').read(), os.stat(work_dir / name).st_mtime_ns)
            for name in kept} == kept
    assert sorted(n for n in os.listdir(work_dir) if n.endswith(('.pth', '.tmp'))) == \
        sorted(n for n in kept if n.endswith('.pth'))
    assert not any(osp.exists(setup['root'] / marker)
                   for marker in ('pwned_teacher', 'pwned_resume'))
