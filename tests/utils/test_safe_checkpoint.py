"""mmengine checkpoints load under weights_only=True through the checked loader (and mmengine's
local loader, once mmdfkd is imported), with the allow-list for that load only; pickled code does
not load, through any loader of the project (mmengine's, a pretrained backbone's; teachers and
--resume are covered in tests/tools/test_train_bad_input.py)."""
import os
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner import load_checkpoint, save_checkpoint

import mmdfkd  # noqa: F401  (registers the checked loader with mmengine)
from mmdfkd.utils import (CheckpointFileError, checkpoint_problem, load_checkpoint_file,
                          mmengine_checkpoint_globals)


class _TouchFile:
    """Unpickling this object would run ``os.system('touch PATH')``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return os.system, (f'touch {self.path}', )


class _GetattrEscape:
    """Unpickling this would call ``getattr(HistoryBuffer, '__init__')``: not a statistic."""

    def __reduce__(self):
        return getattr, (HistoryBuffer, '__init__')


def test_mmengine_checkpoint_with_numpy_and_history_buffer_loads(tmp_path, monkeypatch):
    model = torch.nn.Linear(3, 2)
    buffer = HistoryBuffer()
    buffer.update(1.5)
    buffer.update(2.5)
    meta = dict(seed=np.int64(7), lr=np.float64(0.01), array=np.arange(4, dtype=np.float32),
                hub=dict(loss=buffer))
    path = tmp_path / 'ckpt.pth'
    save_checkpoint(dict(state_dict=model.state_dict(), meta=meta), str(path))

    # A fresh process (resume) has created no HistoryBuffer yet: its method registry is empty.
    monkeypatch.setattr(HistoryBuffer, '_statistics_methods', {})
    restored = torch.nn.Linear(3, 2)
    ckpt = load_checkpoint(restored, str(path), map_location='cpu')

    torch.testing.assert_close(restored.weight, model.weight)
    assert ckpt['meta']['seed'] == 7 and isinstance(ckpt['meta']['seed'], np.int64)
    np.testing.assert_array_equal(ckpt['meta']['array'], np.arange(4, dtype=np.float32))
    loaded_buffer = ckpt['meta']['hub']['loss']
    assert isinstance(loaded_buffer, HistoryBuffer)
    assert loaded_buffer.mean() == pytest.approx(2.0)
    assert loaded_buffer.current() == pytest.approx(2.5)


def test_pickle_payload_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save(dict(state_dict={}, meta=_TouchFile(str(marker))), str(path))

    with pytest.raises(CheckpointFileError, match='evil.pth holds pickled objects that are not '
                       'allowed to be loaded'):
        load_checkpoint(torch.nn.Linear(3, 2), str(path), map_location='cpu')
    with mmengine_checkpoint_globals(), pytest.raises(pickle.UnpicklingError):
        torch.load(str(path))
    assert not marker.exists()


def test_getattr_is_limited_to_history_buffer_statistics(tmp_path):
    path = tmp_path / 'getattr.pth'
    torch.save(dict(meta=_GetattrEscape()), str(path))
    with mmengine_checkpoint_globals(), pytest.raises(pickle.UnpicklingError,
                                                      match='HistoryBuffer statistics'):
        torch.load(str(path))


def test_pretrained_backbone_with_a_pickle_payload_is_refused(tmp_path):
    from mmdfkd.models.backbones import TimmViT
    marker = tmp_path / 'pwned'
    path = tmp_path / 'deit_tiny.pth'
    torch.save(dict(model=_TouchFile(str(marker))), str(path))
    backbone = TimmViT(init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(RuntimeError, match='deit_tiny.pth holds pickled objects that are not '
                       'allowed to be loaded .*from a trusted source'):
        backbone.init_weights()
    assert not marker.exists()

    path.write_bytes(b'not a checkpoint at all')
    with pytest.raises(RuntimeError, match='deit_tiny.pth is not a PyTorch checkpoint'):
        backbone.init_weights()


class _HugeBytes:
    """Unpickling this would call ``bytes(10**12)``: a terabyte of zeros."""

    def __reduce__(self):
        return bytes, (10**12, )


def test_empty_history_buffer_and_empty_array_load(tmp_path):
    # Protocol 2 pickles empty bytes (the data of an empty array) as a call of builtins.bytes.
    model = torch.nn.Linear(3, 2)
    empty = HistoryBuffer()
    meta = dict(iter=0, empty_array=np.zeros((0, 4), dtype=np.float32))
    message_hub = dict(log_scalars={'train/loss': empty}, runtime_info=dict(iter=0))
    path = tmp_path / 'iter_0.pth'
    save_checkpoint(dict(state_dict=model.state_dict(), meta=meta, message_hub=message_hub),
                    str(path))

    ckpt = load_checkpoint_file(str(path))
    assert ckpt['meta']['empty_array'].shape == (0, 4)
    assert ckpt['meta']['empty_array'].dtype == np.float32
    buffer = ckpt['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer) and len(buffer.data[0]) == 0
    assert checkpoint_problem(str(path)) is None


def test_bytes_is_limited_to_empty_bytes(tmp_path):
    path = tmp_path / 'huge.pth'
    torch.save(dict(meta=_HugeBytes()), str(path))
    with mmengine_checkpoint_globals(), pytest.raises(pickle.UnpicklingError):
        torch.load(str(path))
    assert 'not allowed to be loaded (Refusing bytes(1000000000000,)' in checkpoint_problem(
        str(path))


def test_the_allow_list_holds_inside_the_scope_only(tmp_path):
    path = tmp_path / 'iter_1.pth'
    buffer = HistoryBuffer()
    buffer.update(1.0)
    save_checkpoint(dict(meta=dict(seed=np.int64(3)), message_hub=dict(loss=buffer)), str(path))
    before = set(torch.serialization.get_safe_globals())
    with pytest.raises(pickle.UnpicklingError):  # torch's own allow-list does not have them
        torch.load(str(path), weights_only=True)
    with mmengine_checkpoint_globals():
        assert isinstance(torch.load(str(path), weights_only=True)['message_hub']['loss'],
                          HistoryBuffer)
    assert set(torch.serialization.get_safe_globals()) == before
    assert load_checkpoint_file(str(path))['meta']['seed'] == 3
    assert set(torch.serialization.get_safe_globals()) == before


def test_entries_the_user_allowed_stay_allowed(tmp_path):
    path = str(tmp_path / 'a.pth')
    save_checkpoint(dict(meta=dict(a=np.zeros(2))), path)
    before = torch.serialization.get_safe_globals()
    assert np.ndarray not in before
    # The user's own np.ndarray entry, which the scope needs too: leaving the scope keeps it.
    torch.serialization.add_safe_globals([np.ndarray])
    try:
        load_checkpoint_file(path)
        assert np.ndarray in torch.serialization.get_safe_globals()
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(before)
