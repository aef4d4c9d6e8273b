"""Parameters, GFLOPs and CPU latency of a detector config (the student of a distiller).

The model is built without pretrained weights (nothing is loaded or downloaded) and run on one
random image in ``mode='tensor'`` (backbone, neck and head, without box post-processing). FLOPs
count a multiply-add as two (torch ``FlopCounterMode``, attention included). ``tools/model_stats.py``
is the command-line front end.
"""
import statistics
import time
from functools import partial
from typing import Any, Callable, Dict, Optional, Tuple

import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.utils import register_all_modules
from mmengine.config import ConfigDict
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from mmdfkd.utils.config import load_config

aten = torch.ops.aten


def _sdpa_flops(query_shape: torch.Size, key_shape: torch.Size, value_shape: torch.Size, *args,
                out_shape: Optional[torch.Size] = None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


# FlopCounterMode knows the CUDA attention kernels but counts the fused CPU kernel, which
# scaled_dot_product_attention runs on the CPU, as zero.
SDPA_FLOP_FORMULAS = {aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_flops}


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call of ``fn`` (a multiply-add counts as 2), attention included.

    Args:
        fn: Function to run once under the counter, without gradients.

    Returns:
        int: Floating-point operations of matrix products, convolutions and attention.
    """
    with torch.no_grad(), FlopCounterMode(display=False,
                                          custom_mapping=SDPA_FLOP_FORMULAS) as counter:
        fn()
    return counter.get_total_flops()


def measure_latency_ms(fn: Callable[[], Any], runs: int, warmup: int) -> float:
    """Median wall time of ``fn`` in milliseconds over ``runs`` calls after ``warmup`` calls."""
    times = []
    with torch.no_grad():
        for i in range(warmup + runs):
            start = time.perf_counter()
            fn()
            if i >= warmup:
                times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def strip_pretrained(cfg: Any) -> Any:
    """A copy of a model config with every pretrained-weight reference removed.

    Drops ``init_cfg`` entries of type ``Pretrained`` and sets ``pretrained`` keys to None, at any
    depth, so building and initialising the model never reads or downloads weights.

    Args:
        cfg: A model config (nested dicts and lists).

    Returns:
        The cleaned copy (plain dicts and lists).
    """
    if isinstance(cfg, (list, tuple)):
        return type(cfg)(strip_pretrained(c) for c in cfg)
    if not isinstance(cfg, dict):
        return cfg
    def is_pretrained(init: Any) -> bool:
        return isinstance(init, dict) and init.get('type') == 'Pretrained'

    out = {}
    for key, value in cfg.items():
        if key == 'pretrained' or (key == 'init_cfg' and is_pretrained(value)):
            value = None
        elif key == 'init_cfg' and isinstance(value, (list, tuple)):
            value = [init for init in value if not is_pretrained(init)] or None
        out[key] = strip_pretrained(value)
    return out


def build_model(config: str) -> torch.nn.Module:
    """Build the (student) detector of a config in eval mode, without pretrained weights.

    Args:
        config: Config file path or ``mmdet::`` path.

    Returns:
        torch.nn.Module: The detector.
    """
    register_all_modules()
    model_cfg = load_config(config).model.to_dict()
    if 'student' in model_cfg:
        # A student without a data preprocessor of its own uses the distiller's.
        student = model_cfg['student']
        student.setdefault('data_preprocessor', model_cfg.get('data_preprocessor'))
        model_cfg = student
    return MODELS.build(ConfigDict(strip_pretrained(model_cfg))).eval()


def model_stats(config: str, shape: Tuple[int, int] = (800, 1333), runs: int = 10,
                warmup: int = 2) -> Dict[str, Any]:
    """Measure a config's detector (the student of a distiller).

    Args:
        config: Config file path or ``mmdet::`` path.
        shape: Image (height, width) before the data preprocessor's padding.
        runs: Timed forward passes.
        warmup: Untimed forward passes before them.

    Returns:
        dict: ``params``, ``gflops``, ``latency_ms``, ``model``, ``backbone``, ``shape``,
        ``input_shape`` and ``threads``.
    """
    model = build_model(config)
    height, width = shape
    image = torch.randint(0, 256, (3, height, width), dtype=torch.uint8)
    sample = DetDataSample(metainfo=dict(
        img_shape=(height, width), ori_shape=(height, width), scale_factor=(1., 1.)))
    with torch.no_grad():
        data = model.data_preprocessor(dict(inputs=[image], data_samples=[sample]), False)
    forward = partial(model, data['inputs'], data['data_samples'], mode='tensor')
    backbone = getattr(model, 'backbone', None)
    return dict(
        model=type(model).__name__,
        backbone=getattr(backbone, 'model_name', type(backbone).__name__),
        shape=[height, width],
        input_shape=list(data['inputs'].shape[-2:]),
        params=sum(p.numel() for p in model.parameters()),
        gflops=round(count_flops(forward) / 1e9, 2),
        latency_ms=round(measure_latency_ms(forward, runs, warmup), 1),
        threads=torch.get_num_threads())
