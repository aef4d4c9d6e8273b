"""Checkpoints are written atomically (a failure or a kill while saving leaves the previous file
loadable), damaged checkpoints are recognized, and --resume finds the newest one that loads."""
import os
import signal
import subprocess
import sys

import mmengine.runner
import mmengine.runner.runner
import pytest
import torch

import mmdfkd  # noqa: F401  (installs the atomic save)
from mmdfkd.utils import checkpoint_files
from mmdfkd.utils.checkpoint_files import (atomic_save_checkpoint, checkpoint_problem,
                                           find_resumable_checkpoint)


class _TouchFile:
    """Unpickling this object would run ``os.system('touch PATH')``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return os.system, (f'touch {self.path}', )


def _good(path, value: float = 1.0) -> str:
    mmengine.runner.save_checkpoint(dict(state_dict=dict(w=torch.full((64, ), value)),
                                         meta=dict(iter=int(value))), str(path))
    return str(path)


def test_mmengine_saves_through_the_atomic_writer():
    # The Runner, CheckpointHook and user code reach mmengine's function by these names.
    assert mmengine.runner.runner.save_checkpoint is atomic_save_checkpoint
    assert mmengine.runner.save_checkpoint is atomic_save_checkpoint
    assert mmengine.runner.checkpoint.save_checkpoint is atomic_save_checkpoint


def test_failure_mid_save_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    path = _good(tmp_path / 'iter_2.pth', 2.0)
    before = open(path, 'rb').read()

    def save_half_then_fail(obj, f):
        f.write(b'PK\x03\x04 partial bytes of a new checkpoint')
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(checkpoint_files.torch, 'save', save_half_then_fail)
    with pytest.raises(OSError, match='No space left'):
        mmengine.runner.save_checkpoint(dict(state_dict=dict(w=torch.zeros(64))), path)
    monkeypatch.undo()

    assert open(path, 'rb').read() == before
    assert os.listdir(tmp_path) == ['iter_2.pth']  # no temporary file left behind
    torch.testing.assert_close(torch.load(path, weights_only=True)['state_dict']['w'],
                               torch.full((64, ), 2.0))

    _good(path, 3.0)  # a save that succeeds replaces the file
    assert torch.load(path, weights_only=True)['meta']['iter'] == 3
    assert os.listdir(tmp_path) == ['iter_2.pth']


def test_kill_while_saving_leaves_the_previous_checkpoint(tmp_path):
    path = _good(tmp_path / 'iter_4.pth', 4.0)
    # A run killed (SIGKILL) half way through writing the new bytes of the same checkpoint.
    script = (
        'import os, signal, torch, mmengine.runner, mmdfkd\n'
        'from mmdfkd.utils import checkpoint_files\n'
        'def save_half_then_die(obj, f):\n'
        '    f.write(b"PK partial"); f.flush()\n'
        '    os.kill(os.getpid(), signal.SIGKILL)\n'
        'checkpoint_files.torch.save = save_half_then_die\n'
        f'mmengine.runner.save_checkpoint(dict(state_dict=dict(w=torch.zeros(64))), {path!r})\n')
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    assert os.path.isfile(path + '.tmp')  # the torn write went to the temporary file only
    assert checkpoint_problem(path) is None
    assert torch.load(path, weights_only=True)['meta']['iter'] == 4
    assert find_resumable_checkpoint(str(tmp_path)) == (path, [])


def test_damaged_and_unsafe_checkpoints_are_named(tmp_path):
    good = _good(tmp_path / 'good.pth')
    data = open(good, 'rb').read()
    assert checkpoint_problem(good) is None

    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(data[:len(data) // 2])
    assert 'not a complete PyTorch checkpoint' in checkpoint_problem(str(truncated))

    flipped = bytearray(data)  # damaged inside a tensor: torch.load alone would not notice
    offset = data.index(torch.full((64, ), 1.0).numpy().tobytes())
    flipped[offset:offset + 16] = bytes(16)
    damaged = tmp_path / 'damaged.pth'
    damaged.write_bytes(bytes(flipped))
    assert 'fails its CRC check' in checkpoint_problem(str(damaged))

    marker = tmp_path / 'pwned'
    torch.save(dict(state_dict={}, meta=_TouchFile(str(marker))), str(tmp_path / 'evil.pth'))
    assert 'not allowed to be loaded' in checkpoint_problem(str(tmp_path / 'evil.pth'))
    assert not marker.exists()

    assert 'does not exist' in checkpoint_problem(str(tmp_path / 'missing.pth'))


def test_resume_falls_back_to_the_newest_checkpoint_that_loads(tmp_path):
    assert find_resumable_checkpoint(str(tmp_path / 'no_such_dir')) == (None, [])
    older = _good(tmp_path / 'iter_2.pth', 2.0)
    _good(tmp_path / 'iter_4.pth', 4.0)
    newest = tmp_path / 'iter_6.pth'  # torn by a kill under a non-atomic writer
    newest.write_bytes(open(older, 'rb').read()[:300])
    (tmp_path / 'last_checkpoint').write_text(str(newest))

    path, skipped = find_resumable_checkpoint(str(tmp_path))
    assert path == str(tmp_path / 'iter_4.pth')
    assert len(skipped) == 1 and skipped[0].startswith(f'last_checkpoint names {newest}')

    (tmp_path / 'last_checkpoint').write_text('')  # killed while writing the pointer
    path, skipped = find_resumable_checkpoint(str(tmp_path))
    assert path == str(tmp_path / 'iter_4.pth')
    assert 'is empty' in skipped[0] and 'iter_6.pth' in skipped[1]


_CLASSES = ('rectangle', 'ellipse', 'triangle', 'cross', 'star', 'ring')


def _save_legacy_zoo_checkpoint(path) -> dict:
    """Saves the demo teacher, randomly initialized, the way mmdet's model-zoo files of torch <
    1.6 (and its publish_model.py) are: in torch's legacy format, with a meta of strings, a
    tuple of classes and an int epoch. Returns the saved state dict."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    from conftest import TEACHER_CONFIG
    from mmdfkd.utils import load_config
    register_all_modules()
    torch.manual_seed(0)
    state = MODELS.build(load_config(TEACHER_CONFIG).model).state_dict()
    meta = dict(mmdet_version='2.0.0', mmcv_version='0.5.1', config='model = dict(...)',
                CLASSES=_CLASSES, epoch=12, iter=1500, time='Thu Jan 30 16:33:42 2020')
    torch.save(dict(meta=meta, state_dict=state), str(path), _use_new_zipfile_serialization=False)
    return state


def test_legacy_format_zoo_checkpoint_loads_as_a_teacher_and_for_resume(tmp_path):
    from mmdet.registry import MODELS

    from conftest import DFKD_CONFIG, TEACHER_CONFIG
    from mmdfkd.utils import load_config
    path = tmp_path / 'retinanet_r18_shapes_20200130-c2398f9e.pth'
    saved = _save_legacy_zoo_checkpoint(path)
    assert not path.read_bytes().startswith(b'PK')  # not a zip archive

    assert checkpoint_problem(str(path)) is None
    loaded = torch.load(str(path), weights_only=True)
    assert loaded['meta']['CLASSES'] == _CLASSES and loaded['meta']['epoch'] == 12

    cfg = load_config(DFKD_CONFIG)
    cfg.model.teachers[0].update(config=TEACHER_CONFIG, checkpoint=str(path))
    cfg.model.probe_shape = (128, 128)
    distiller = MODELS.build(cfg.model)
    teacher = distiller.teachers[0].state_dict()
    assert teacher.keys() == saved.keys()
    assert all(torch.equal(teacher[k], v) for k, v in saved.items())

    # load_from / --resume read it through mmengine.
    fresh = MODELS.build(load_config(TEACHER_CONFIG).model)
    mmengine.runner.load_checkpoint(fresh, str(path), map_location='cpu', strict=True)
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in saved.items())


def test_every_truncation_of_a_legacy_checkpoint_is_named(tmp_path):
    from mmdfkd.models.distillers.teacher_loader import load_teacher_checkpoint
    path = tmp_path / 'legacy.pth'
    model = torch.nn.Linear(4, 8)
    torch.save(dict(meta=dict(CLASSES=_CLASSES, epoch=12), state_dict=model.state_dict()),
               str(path), _use_new_zipfile_serialization=False)
    data = path.read_bytes()
    assert checkpoint_problem(str(path)) is None

    truncated = tmp_path / 'truncated.pth'
    # Every length: within the magic number, a pickle (a global's name included: torch would
    # call it a refused global) or the tensor data.
    for length in range(len(data)):
        truncated.write_bytes(data[:length])
        problem = checkpoint_problem(str(truncated))
        assert problem is not None and problem.startswith(f'{truncated} is not a complete '
                                                          'PyTorch checkpoint'), (length, problem)
        assert 'the file is truncated' in problem, (length, problem)
    with pytest.raises(RuntimeError, match='Teacher checkpoint .*truncated.pth is not a '
                       'complete PyTorch checkpoint .*the file is truncated'):
        load_teacher_checkpoint(model, str(truncated))


def test_files_that_are_no_checkpoint_and_directories_are_named(tmp_path):
    text = tmp_path / 'notes.pth'
    text.write_bytes(b'not a checkpoint at all')
    assert checkpoint_problem(str(text)) == (
        f"{text} is not a PyTorch checkpoint: it is neither a zip archive nor in the legacy "
        "format of torch.save (it starts with b'not a ch')")

    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    assert checkpoint_problem(str(work_dir)) == (
        f'{work_dir} is a directory, not a checkpoint file, and holds no .pth file')
    for name in ('iter_2.pth', 'iter_10.pth', 'best_coco_bbox_mAP_iter_10.pth', 'last_checkpoint'):
        (work_dir / name).write_bytes(b'')
    assert checkpoint_problem(str(work_dir)) == (
        f'{work_dir} is a directory, not a checkpoint file; it holds iter_10.pth, iter_2.pth, '
        'best_coco_bbox_mAP_iter_10.pth')

    from mmdfkd.models.distillers.teacher_loader import load_teacher_checkpoint
    with pytest.raises(RuntimeError, match=f'Teacher checkpoint {work_dir} is a directory, not a '
                       'checkpoint file; it holds iter_10.pth.* --cfg-options '
                       r'model.teachers.0.checkpoint=PATH\.'):
        load_teacher_checkpoint(torch.nn.Linear(3, 2), str(work_dir),
                                key='model.teachers.0.checkpoint')


def test_a_refused_pickle_names_the_global_and_not_torch_advice(tmp_path):
    from mmdfkd.models.distillers.teacher_loader import load_teacher_checkpoint
    marker = tmp_path / 'pwned'
    for zip_format in (True, False):
        path = tmp_path / f'evil_{zip_format}.pth'
        torch.save(dict(state_dict={}, meta=_TouchFile(str(marker))), str(path),
                   _use_new_zipfile_serialization=zip_format)
        expected = (f'{path} holds pickled objects that are not allowed to be loaded '
                    f'(`{os.system.__module__}.system`): unpickling them could run code, so do '
                    'not load the file with weights_only=False')
        assert checkpoint_problem(str(path)) == expected
        with pytest.raises(RuntimeError) as info:
            load_teacher_checkpoint(torch.nn.Linear(3, 2), str(path))
        assert expected in str(info.value)
        assert 'add_safe_globals' not in str(info.value) and '\n' not in str(info.value)
    assert not marker.exists()
