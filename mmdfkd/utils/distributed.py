"""Distributed training: set-up on machines without a GPU (gloo), and a clean shutdown."""
import datetime

import torch
import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.registry import MODEL_WRAPPERS
from torch.nn.parallel import DistributedDataParallel


def init_cpu_distributed(cfg: Config) -> None:
    """Prepares a ``--launcher pytorch`` run (torchrun) for a machine without CUDA.

    mmengine 0.10.7 assumes a GPU there: its launcher calls ``torch.cuda.set_device`` and its
    default DDP wrapper passes ``device_ids=[LOCAL_RANK]``, which DDP refuses for a CPU model.
    This starts the process group itself with the gloo backend (the Runner then skips its own
    initialization) from the environment torchrun sets (``MASTER_ADDR``, ``MASTER_PORT``,
    ``RANK``, ``WORLD_SIZE``), keeping the other ``env_cfg.dist_cfg`` arguments (e.g.
    ``timeout``, in seconds as mmengine takes it), and sets ``device_ids=None`` in the model
    wrapper config. The wrapper is otherwise mmengine's default: ``MMDistributedDataParallel``
    with ``broadcast_buffers=False`` and the config's ``find_unused_parameters`` (default
    False).

    Args:
        cfg: The training config; ``env_cfg.dist_cfg`` and ``model_wrapper_cfg`` are updated
            in place.

    Raises:
        RuntimeError: If CUDA is available (use the config's own backend there) or the process
            group is already initialized.
    """
    if torch.cuda.is_available():
        raise RuntimeError('init_cpu_distributed is for machines without CUDA; with a GPU, '
                           "mmengine's own initialization (env_cfg.dist_cfg) applies.")
    if torch_dist.is_initialized():
        raise RuntimeError('The process group is already initialized.')
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = dict(env_cfg.get('dist_cfg') or {}, backend='gloo')
    env_cfg['dist_cfg'] = dist_cfg
    init_kwargs = dict(dist_cfg)
    if isinstance(init_kwargs.get('timeout'), (int, float)):  # seconds, as mmengine takes it
        init_kwargs['timeout'] = datetime.timedelta(seconds=init_kwargs['timeout'])
    torch_dist.init_process_group(**init_kwargs)

    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper_type = wrapper.get('type', 'MMDistributedDataParallel')
    if isinstance(wrapper_type, str):
        wrapper_type = MODEL_WRAPPERS.get(wrapper_type)
    if isinstance(wrapper_type, type) and issubclass(wrapper_type, DistributedDataParallel):
        wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper


def finish_distributed() -> None:
    """Ends a distributed run: waits for every rank, then destroys the process group.

    Without this, a rank that finishes first (rank 0 still writing the last checkpoint) exits
    with the process group alive, and its gloo threads can abort the interpreter at exit
    (``terminate called without an active exception``), failing the whole torchrun job. Does
    nothing when no process group is initialized.
    """
    if not torch_dist.is_initialized():
        return
    torch_dist.barrier()
    torch_dist.destroy_process_group()
