"""Train a detector or a distiller: ``python tools/train.py CONFIG [options]``.

The flags are mmdet's own (``--work-dir``, ``--resume [PATH]``, ``--amp``, ``--auto-scale-lr``,
``--cfg-options``, ``--launcher``, ``--local-rank``). ``CONFIG`` may be a file or an
``mmdet::`` path.

``--resume`` checks the checkpoint before anything is built (complete, undamaged, and loadable
with ``weights_only=True``); without a path it continues from the newest checkpoint of the work
dir that loads. Before training starts, its weights must fit the config's model: a checkpoint of
another config (a teacher's given to a distiller config, a student of another shape) is refused
with a message, where mmengine would load none of the weights and fail on the optimizer state.
Every run gets a ``RandomStateHook``, so a resumed run draws the same random numbers as an
uninterrupted one. With ``--launcher pytorch`` (``tools/dist_train.sh``) on a
machine without CUDA, the processes use the gloo backend.
"""
import argparse
import logging
import os
import sys
from typing import Optional

import torch
from mmengine.config import DictAction
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import mmdfkd  # noqa: F401  (registers modules and the checked checkpoint loader)
from mmdfkd.engine.hooks import RandomStateHook
from mmdfkd.utils import (ConfigOptionError, MissingFilesError, check_config_paths,
                          checkpoint_fit_problem, checkpoint_problem, find_resumable_checkpoint,
                          finish_distributed, init_cpu_distributed, prepare_config)


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


def checked_resume_checkpoint(resume: str, work_dir: str) -> Optional[str]:
    """The checkpoint a ``--resume`` run continues from, checked to load; exits if it does not.

    Args:
        resume: ``'auto'`` (``--resume`` alone) or the given path.
        work_dir: The run's work dir.

    Returns:
        The checkpoint path; None for ``'auto'`` when the work dir has no checkpoint (training
        then starts from the beginning).
    """
    if resume == 'auto':
        path, skipped = find_resumable_checkpoint(work_dir)
        for reason in skipped:
            print_log(f'--resume passes over a checkpoint: {reason}.', 'current', logging.WARNING)
        if path is None and skipped:
            sys.exit(f'--resume: no checkpoint of {work_dir} can be loaded: '
                     f'{"; ".join(skipped)}. Give one with --resume PATH, or start again '
                     'without --resume.')
        return path
    if not os.path.exists(resume):
        sys.exit(f'--resume {resume}: no such checkpoint file. Give an existing .pth, or '
                 '--resume alone to continue from the latest checkpoint in the work dir.')
    problem = checkpoint_problem(resume)
    if problem is not None:
        fallback = find_resumable_checkpoint(work_dir)[0]
        sys.exit(f'--resume {resume}: cannot resume, {problem}. '
                 + (f'Resume from {fallback} instead (the newest checkpoint of {work_dir} that '
                    'loads), or give another .pth.' if fallback else
                    'Give another .pth, or start again without --resume.'))
    return resume


def exit_if_checkpoint_does_not_fit(runner: Runner, checkpoint: str, config: str) -> None:
    """Exits with a message if the weights of the checkpoint to resume do not fit the model.

    mmengine would load none of the weights of a checkpoint of another config (with a
    warning), then fail with a traceback on the optimizer's parameter groups.

    Args:
        runner: The built Runner, before ``train()`` (which resumes).
        checkpoint: The checkpoint ``--resume`` continues from.
        config: The config file given to the tool.
    """
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    problem = checkpoint_fit_problem(model, checkpoint)
    if problem:
        finish_distributed()
        sys.exit(f'Cannot resume from {checkpoint}: its weights do not fit the model of '
                 f'{config}: {problem}. Resume with the config it was trained with '
                 '(tools/train.py saved a copy in its work dir, '
                 f'{os.path.dirname(os.path.abspath(checkpoint))}), or drop --resume to start '
                 'a new run (--cfg-options load_from=PATH starts it from the weights that fit).')


def main() -> None:
    args = parse_args()
    try:
        cfg = prepare_config(args.config, args.work_dir, args.cfg_options, args.launcher)
    except ConfigOptionError as exc:
        sys.exit(str(exc))

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

    if args.resume is not None:
        cfg.resume = True
        cfg.load_from = checked_resume_checkpoint(args.resume, cfg.work_dir)
    # --resume continues the random streams too; mmengine alone would only seed them again.
    hooks = list(cfg.get('custom_hooks', []))
    if not any(hook.get('type') in ('RandomStateHook', RandomStateHook) for hook in hooks):
        cfg.custom_hooks = [*hooks, dict(type='RandomStateHook')]

    try:  # a missing teacher checkpoint or dataset file: say so before building anything
        check_config_paths(cfg, mode='train')
    except MissingFilesError as exc:
        sys.exit(str(exc))

    if args.launcher == 'pytorch' and not torch.cuda.is_available():
        init_cpu_distributed(cfg)  # gloo; mmengine's own set-up needs a GPU

    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    if cfg.resume and cfg.load_from:
        exit_if_checkpoint_does_not_fit(runner, cfg.load_from, args.config)
    runner.train()
    finish_distributed()


if __name__ == '__main__':
    main()
