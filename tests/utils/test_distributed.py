"""init_cpu_distributed starts a gloo process group from torchrun's environment and makes the
DDP wrapper CPU-ready; finish_distributed ends it (a single-process group here; the two-process
runs are in tests/tools/test_dist_train.py)."""
import socket

import pytest
import torch.distributed as torch_dist
from mmengine.config import Config

from mmdfkd.utils import finish_distributed, init_cpu_distributed


@pytest.fixture
def torchrun_env(monkeypatch):
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    for key, value in dict(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK='0',
                           WORLD_SIZE='1', LOCAL_RANK='0').items():
        monkeypatch.setenv(key, value)
    yield
    if torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def test_gloo_group_and_cpu_wrapper_then_clean_finish(torchrun_env):
    cfg = Config(dict(env_cfg=dict(dist_cfg=dict(backend='nccl', timeout=60)),
                      find_unused_parameters=True))
    init_cpu_distributed(cfg)
    assert torch_dist.is_initialized() and torch_dist.get_backend() == 'gloo'
    assert cfg.env_cfg.dist_cfg == dict(backend='gloo', timeout=60)
    assert cfg.model_wrapper_cfg == dict(type='MMDistributedDataParallel',
                                         broadcast_buffers=False, find_unused_parameters=True,
                                         device_ids=None)
    with pytest.raises(RuntimeError, match='already initialized'):
        init_cpu_distributed(cfg)

    finish_distributed()
    assert not torch_dist.is_initialized()
    finish_distributed()  # no group: nothing to do
    assert not torch_dist.is_initialized()
