"""Train a detector or a distiller: ``python tools/train.py CONFIG [options]``.

The flags are mmdet's own (``--work-dir``, ``--resume [PATH]``, ``--amp``, ``--auto-scale-lr``,
``--cfg-options``, ``--launcher``, ``--local-rank``). ``CONFIG`` may be a file or an
``mmdet::`` path.
"""
import argparse
import os
import sys

import torch
from mmengine.config import DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import mmdfkd  # noqa: F401  (registers modules, allows mmengine checkpoints)
from mmdfkd.utils import prepare_config


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a detector or a distiller')
    parser.add_argument('config', help='train config file path (or mmdet::path)')
    parser.add_argument('--work-dir', help='the dir to save logs and checkpoints')
    parser.add_argument('--amp', action='store_true',
                        help='enable automatic mixed precision training (needs a GPU)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate with the total batch size')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from the given checkpoint, or, with no path, from the latest checkpoint '
        'in the work dir')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value pairs (e.g. '
                        'train_cfg.max_iters=100)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    # torch.distributed.launch passes --local-rank (torch >= 2.0) or --local_rank.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main() -> None:
    args = parse_args()
    cfg = prepare_config(args.config, args.work_dir, args.cfg_options, args.launcher)

    if args.amp:
        if not torch.cuda.is_available():
            sys.exit('--amp needs a CUDA GPU, and none is available here. Run without --amp.')
        optim_type = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if optim_type != 'AmpOptimWrapper':
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'

    if args.auto_scale_lr:
        scale_cfg = cfg.get('auto_scale_lr')
        if not scale_cfg or 'base_batch_size' not in scale_cfg:
            sys.exit('--auto-scale-lr needs `auto_scale_lr = dict(base_batch_size=N)` in the '
                     f'config {args.config}; add it or drop the flag.')
        cfg.auto_scale_lr.enable = True

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        if not os.path.isfile(args.resume):
            sys.exit(f'--resume {args.resume}: no such checkpoint file. Give an existing .pth, '
                     'or --resume alone to continue from the latest checkpoint in the work dir.')
        cfg.resume = True
        cfg.load_from = args.resume

    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    runner.train()


if __name__ == '__main__':
    main()
