"""The ``atomic_local`` file backend: a save that fails or is killed half way leaves the previous
file intact, and mmengine's Runner writes its checkpoints through it when the config asks."""
import io
import os
import signal
import subprocess
import sys

import mmengine.runner
import pytest
import torch
from mmengine.fileio import get_file_backend

from mmdfkd.utils import (ATOMIC_LOCAL_BACKEND, AtomicLocalBackend, checkpoint_problem,
                          find_resumable_checkpoint, load_checkpoint_file)
from mmdfkd.utils import atomic_file_backend
from toy_runner import toy_runner

BACKEND_ARGS = dict(backend=ATOMIC_LOCAL_BACKEND)


def _checkpoint_bytes(value: float) -> bytes:
    with io.BytesIO() as f:
        torch.save(dict(state_dict=dict(w=torch.full((64, ), value)), meta=dict(iter=int(value))),
                   f)
        return f.getvalue()


def test_mmengine_picks_the_backend_by_name(tmp_path):
    assert type(get_file_backend(str(tmp_path), backend_args=BACKEND_ARGS)) is AtomicLocalBackend
    # Without the name, mmengine's own local backend: the registration changes no default.
    assert type(get_file_backend(str(tmp_path))) is not AtomicLocalBackend


def test_put_and_put_text_replace_the_file(tmp_path):
    backend = AtomicLocalBackend()
    path = str(tmp_path / 'new_dir' / 'iter_2.pth')
    backend.put(_checkpoint_bytes(2.0), path)  # creates the directory
    backend.put(_checkpoint_bytes(3.0), path)
    assert load_checkpoint_file(path)['meta']['iter'] == 3
    backend.put_text('first', str(tmp_path / 'pointer'))
    backend.put_text('sécond', str(tmp_path / 'pointer'))
    assert (tmp_path / 'pointer').read_text(encoding='utf-8') == 'sécond'
    assert sorted(os.listdir(tmp_path)) == ['new_dir', 'pointer']
    assert os.listdir(tmp_path / 'new_dir') == ['iter_2.pth']  # no temporary file left


def test_failure_mid_save_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    path = str(tmp_path / 'iter_2.pth')
    AtomicLocalBackend().put(_checkpoint_bytes(2.0), path)
    before = open(path, 'rb').read()
    real_open = open

    class HalfWritten:
        """A file that takes the first half of the bytes, then finds the disk full."""

        def __init__(self, *args, **kwargs):
            self.file = real_open(*args, **kwargs)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        def write(self, data):
            self.file.write(data[:len(data) // 2])
            self.file.flush()
            raise OSError(28, 'No space left on device')

    monkeypatch.setattr(atomic_file_backend, 'open', HalfWritten, raising=False)
    with pytest.raises(OSError, match='No space left'):  # mmengine's save, through the backend
        mmengine.runner.save_checkpoint(dict(state_dict=dict(w=torch.zeros(64))), path,
                                        backend_args=BACKEND_ARGS)
    monkeypatch.undo()

    assert open(path, 'rb').read() == before
    assert os.listdir(tmp_path) == ['iter_2.pth']  # the temporary file is removed
    torch.testing.assert_close(load_checkpoint_file(path)['state_dict']['w'],
                               torch.full((64, ), 2.0))


def test_kill_while_saving_leaves_the_previous_checkpoint(tmp_path):
    path = str(tmp_path / 'iter_4.pth')
    AtomicLocalBackend().put(_checkpoint_bytes(4.0), path)
    # A run killed (SIGKILL) half way through writing the new bytes of the same checkpoint.
    script = (
        'import os, signal, torch, mmengine.runner\n'
        'from mmdfkd.utils import atomic_file_backend\n'
        'real_open = open\n'
        'class HalfWrittenThenKilled:\n'
        '    def __init__(self, *args, **kwargs): self.file = real_open(*args, **kwargs)\n'
        '    def __enter__(self): return self\n'
        '    def __exit__(self, *exc): self.file.close()\n'
        '    def write(self, data):\n'
        '        self.file.write(data[:len(data) // 2]); self.file.flush()\n'
        '        os.kill(os.getpid(), signal.SIGKILL)\n'
        'atomic_file_backend.open = HalfWrittenThenKilled\n'
        'mmengine.runner.save_checkpoint(dict(state_dict=dict(w=torch.zeros(64))), '
        f'{path!r}, backend_args=dict(backend="atomic_local"))\n')
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    assert os.path.getsize(path + '.tmp') > 0  # the torn write went to the temporary file only
    assert checkpoint_problem(path) is None
    assert load_checkpoint_file(path)['meta']['iter'] == 4
    assert find_resumable_checkpoint(str(tmp_path)) == (path, [])


def test_the_runner_writes_checkpoints_through_the_backend(tmp_path, monkeypatch):
    calls = []
    for method in ('put', 'remove'):
        real = getattr(AtomicLocalBackend, method)

        def spy(self, *args, _real=real, _method=method):
            calls.append((_method, os.path.basename(str(args[-1]))))
            return _real(self, *args)

        monkeypatch.setattr(AtomicLocalBackend, method, spy)
    work_dir = str(tmp_path / 'work')
    runner = toy_runner(work_dir, 'atomic_save', max_iters=3,
                        checkpoint_hook=dict(interval=1, max_keep_ckpts=2,
                                             backend_args=BACKEND_ARGS))
    runner.train()

    assert calls == [('put', 'iter_1.pth'), ('put', 'iter_2.pth'), ('remove', 'iter_1.pth'),
                     ('put', 'iter_3.pth')]
    names = sorted(n for n in os.listdir(work_dir) if n.endswith(('.pth', '.tmp', 'checkpoint')))
    assert names == ['iter_2.pth', 'iter_3.pth', 'last_checkpoint']
    with open(f'{work_dir}/last_checkpoint') as f:
        assert f.read() == f'{work_dir}/iter_3.pth'
    assert load_checkpoint_file(f'{work_dir}/iter_3.pth')['meta']['iter'] == 3
