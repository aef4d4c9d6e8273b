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
