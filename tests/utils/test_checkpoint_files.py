"""Damaged checkpoints are recognized, every local checkpoint mmengine loads goes through the
same checked loader (a Runner resume too), and --resume finds the newest checkpoint that
loads."""
import os

import mmengine.runner
import pytest
import torch
from mmengine.runner import CheckpointLoader

import mmdfkd  # noqa: F401  (registers the checked loader with mmengine)
from mmdfkd.utils import checkpoint_files
from mmdfkd.utils.checkpoint_files import (CheckpointFileError, checkpoint_problem,
                                           find_resumable_checkpoint, load_from_checked_local)
from toy_runner import toy_runner


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


def _damaged(path) -> str:
    """A checkpoint whose tensor data is zeroed in place: its member fails the CRC check."""
    data = bytearray(open(_good(path), 'rb').read())
    offset = bytes(data).index(torch.full((64, ), 1.0).numpy().tobytes())
    data[offset:offset + 16] = bytes(16)
    open(path, 'wb').write(bytes(data))
    return str(path)


def test_mmengine_loads_local_checkpoints_with_the_checked_loader(tmp_path):
    assert CheckpointLoader._get_checkpoint_loader(str(tmp_path / 'a.pth')) \
        is load_from_checked_local
    # Other schemes keep mmengine's loaders.
    assert CheckpointLoader._get_checkpoint_loader('https://host/a.pth').__name__ \
        == 'load_from_http'

    damaged = _damaged(tmp_path / 'damaged.pth')
    with pytest.raises(CheckpointFileError, match='fails its CRC check'):
        mmengine.runner.load_checkpoint(torch.nn.Linear(64, 1), damaged, map_location='cpu')
    with pytest.raises(FileNotFoundError, match='missing.pth does not exist'):
        mmengine.runner.load_checkpoint(torch.nn.Linear(64, 1), str(tmp_path / 'missing.pth'))
    ckpt = load_from_checked_local(_good(tmp_path / 'good.pth', 5.0), map_location=None)
    assert ckpt['meta']['iter'] == 5 and ckpt['state_dict']['w'].device.type == 'cpu'


def test_runner_resume_goes_through_the_checked_loader(tmp_path, monkeypatch):
    straight = toy_runner(str(tmp_path / 'straight'), 'checked_resume_straight', max_iters=3,
                          checkpoint_hook=dict(interval=3))
    straight.train()
    work_dir = str(tmp_path / 'work')
    toy_runner(work_dir, 'checked_resume_first', max_iters=2,
               checkpoint_hook=dict(interval=2)).train()
    checkpoint = f'{work_dir}/iter_2.pth'
    # What makes a Runner checkpoint more than tensors: numpy data in HistoryBuffers.
    saved = checkpoint_files.load_checkpoint_file(checkpoint)
    assert type(saved['message_hub']['log_scalars']['train/loss']).__name__ == 'HistoryBuffer'

    loaded = []
    real = checkpoint_files.load_checkpoint_file

    def spy(path, map_location='cpu'):
        loaded.append(path)
        return real(path, map_location)

    monkeypatch.setattr(checkpoint_files, 'load_checkpoint_file', spy)
    safe_globals = set(torch.serialization.get_safe_globals())
    resumed = toy_runner(work_dir, 'checked_resume_second', max_iters=3,
                         checkpoint_hook=dict(interval=3), resume_from=checkpoint)
    resumed.train()
    assert loaded == [checkpoint]
    assert resumed.iter == 3
    assert len(resumed.message_hub.get_scalar('train/loss').data[0]) == 3  # 2 restored + 1
    # Optimizer state (SGD momentum) restored: the same weights as the uninterrupted run.
    for got, expected in zip(resumed.model.parameters(), straight.model.parameters()):
        torch.testing.assert_close(got, expected)
    assert set(torch.serialization.get_safe_globals()) == safe_globals  # allowed for the load only


def test_damaged_and_unsafe_checkpoints_are_named(tmp_path):
    good = _good(tmp_path / 'good.pth')
    data = open(good, 'rb').read()
    assert checkpoint_problem(good) is None

    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(data[:len(data) // 2])
    assert 'not a complete PyTorch checkpoint' in checkpoint_problem(str(truncated))

    # Damaged inside a tensor: torch.load alone would not notice.
    assert 'fails its CRC check' in checkpoint_problem(_damaged(tmp_path / 'damaged.pth'))

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
