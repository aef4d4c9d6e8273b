"""Evaluate a checkpoint: ``python tools/test.py CONFIG CHECKPOINT [options]``.

Flags follow mmdet's ``tools/test.py``: ``--work-dir``, ``--out`` (dump raw predictions to a
pickle), ``--show``/``--show-dir`` (draw predictions), ``--cfg-options``, ``--launcher``.

The checkpoint is checked before anything is built (complete, undamaged, loadable with
``weights_only=True``, and its weights fit the config's model). With a distiller config
(``DetectionDistiller``) the student is evaluated on its own, from the checkpoint's
``student.*`` weights: the teachers are not built, so their checkpoints are not needed. The
results are those of the distiller, whose predictions are its student's. With
``--cfg-options model.predict_with=teacher`` the whole distiller is built to evaluate its
teacher.
"""
import argparse
import os
import sys

import torch
from mmdet.engine.hooks.utils import trigger_visualization_hook
from mmdet.evaluation import DumpDetResults
from mmengine.config import DictAction
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import mmdfkd  # noqa: F401  (registers modules and the checked checkpoint loader)
from mmdfkd.utils import (CheckpointFileError, ConfigOptionError, MissingFilesError,
                          check_config_paths, checkpoint_weights, finish_distributed,
                          init_cpu_distributed, is_distiller_config, load_checkpoint_file,
                          prepare_config, student_model_config, student_weights,
                          weights_fit_problem)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and evaluate) a detector checkpoint')
    parser.add_argument('config', help='test config file path (or mmdet::path)')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save the evaluation metrics')
    parser.add_argument('--out', help='dump predictions to a pickle file (.pkl) for offline '
                        'evaluation')
    parser.add_argument('--show', action='store_true', help='show prediction results')
    parser.add_argument('--show-dir', help='directory (inside the work dir\'s timestamp folder) '
                        'where painted images are saved')
    parser.add_argument('--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value pairs')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main() -> None:
    args = parse_args()
    try:  # a missing, truncated or unsafe checkpoint: say so before building anything
        checkpoint = load_checkpoint_file(args.checkpoint)
    except CheckpointFileError as exc:
        sys.exit(f'Checkpoint {exc}. Give a complete .pth file written by tools/train.py (for '
                 'example work_dirs/NAME/iter_N.pth).')
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        sys.exit(f'--out {args.out}: the output file must end in .pkl or .pickle.')
    try:
        cfg = prepare_config(args.config, args.work_dir, args.cfg_options, args.launcher)
    except ConfigOptionError as exc:
        sys.exit(str(exc))
    student_only = (is_distiller_config(cfg.model)
                    and cfg.model.get('predict_with', 'student') == 'student')
    if student_only:  # the distiller predicts with its student: evaluate the student alone
        cfg.model = student_model_config(cfg.model)
        cfg.load_from, cfg.resume = None, False  # its weights are loaded below
        weights = student_weights(checkpoint)
    else:
        cfg.load_from = args.checkpoint
        weights = checkpoint_weights(checkpoint)
    del checkpoint  # its optimizer state and the like: not needed to evaluate
    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args)

    try:  # a missing teacher checkpoint or dataset file: say so before building anything
        check_config_paths(cfg, mode='test')
    except MissingFilesError as exc:
        sys.exit(str(exc))

    if args.launcher == 'pytorch' and not torch.cuda.is_available():
        init_cpu_distributed(cfg)  # gloo; mmengine's own set-up needs a GPU

    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    problem = weights_fit_problem(model, weights)
    if problem:  # mmengine would load what fits and evaluate a half-initialized model
        finish_distributed()
        sys.exit(f'Checkpoint {args.checkpoint!r} does not fit the model of {args.config}'
                 f'{" (its student)" if student_only else ""}: {problem}. Evaluate it with the '
                 'config it was trained with (tools/train.py saves that config in the work '
                 'dir).')
    if student_only:
        model.load_state_dict(weights, strict=False)  # every weight fits; extras are unused
        print_log(f'Loaded the student of {args.checkpoint}', 'current')
    del weights
    if args.out is not None:
        runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=args.out))
    runner.test()
    finish_distributed()


if __name__ == '__main__':
    main()
