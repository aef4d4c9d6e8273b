"""Parameters, GFLOPs and CPU latency of a detector: ``python tools/model_stats.py CONFIG``.

``CONFIG`` is any mmdet config file or ``mmdet::`` path, a teacher or a student; for a distiller
(a model with a ``student`` key) the student is measured. The model is built without pretrained
weights (nothing is loaded or downloaded) and run on one random image of ``--shape H W`` (default
800 1333), padded by the config's data preprocessor, in ``mode='tensor'`` (backbone, neck and head,
without box post-processing).

* ``params``: number of parameters (frozen ones included).
* ``gflops``: 1e9 floating-point operations of that forward pass, a multiply-add counting as two
  (torch ``FlopCounterMode``: matrix products and convolutions, attention included; element-wise
  operations are not counted). Tables that count multiply-adds (mmcv, fvcore) show half.
* ``latency_ms``: median wall time of ``--runs`` forward passes on the CPU after ``--warmup``.

The last line printed is one JSON object with these keys and ``model``, ``backbone``, ``shape``,
``input_shape`` (after padding) and ``threads``.
"""
import argparse
import json
import sys
from typing import Any, Dict, List, Optional

import mmdfkd  # noqa: F401  (registers modules, allows mmengine checkpoints)
from mmdfkd.utils.model_stats import (build_model, count_flops, measure_latency_ms,  # noqa: F401
                                      model_stats, strip_pretrained)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Parameters, GFLOPs and CPU latency of a detector config')
    parser.add_argument('config', help='config file path (or mmdet::path)')
    parser.add_argument('--shape', type=int, nargs=2, default=[800, 1333], metavar=('H', 'W'),
                        help='input image height and width (default: 800 1333)')
    parser.add_argument('--runs', type=int, default=10, help='timed runs (default: 10)')
    parser.add_argument('--warmup', type=int, default=2, help='untimed runs first (default: 2)')
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 0 or min(args.shape) < 1:
        parser.error('--runs must be >= 1, --warmup >= 0 and --shape positive')
    return args


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    args = parse_args(argv)
    stats = model_stats(args.config, tuple(args.shape), args.runs, args.warmup)
    print(f'{args.config}: {stats["model"]} with {stats["backbone"]}, input '
          f'{stats["shape"][0]}x{stats["shape"][1]} (padded to '
          f'{stats["input_shape"][0]}x{stats["input_shape"][1]})')
    print(f'params {stats["params"] / 1e6:.2f} M | {stats["gflops"]:.1f} GFLOPs | '
          f'{stats["latency_ms"]:.1f} ms median CPU latency ({stats["threads"]} threads)')
    print(json.dumps(stats))
    return stats


if __name__ == '__main__':
    main(sys.argv[1:])
