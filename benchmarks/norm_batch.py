"""GroupNorm against BatchNorm in the data-free demo student's neck and head, by batch size.

    python benchmarks/norm_batch.py [--norms GN BN] [--batch-sizes 2 8] [--iters N] [--seed S]
                                    [--data-root DIR] [--teacher-checkpoint PTH] [--bank DIR]
                                    [--force]

Why: the student's neck (``SimpleFeaturePyramid``) and RetinaNet head use GroupNorm
(``configs/demo/_base_/models/retinanet_deit_tiny_shapes.py``) because synthetic batches are
small. GroupNorm normalizes each image's features by themselves, so nothing depends on the
batch. BatchNorm normalizes by the statistics of the batch, which are noisy estimates at
batch 2, and at test time it uses running statistics instead, accumulated on synthetic images
only, while the student is evaluated on real ones.

What it measures: for each norm (``GN``: the config's own GroupNorm; ``BN``:
``dict(type='BN', requires_grad=True)``, set as ``norm_cfg`` of the student's neck and
``bbox_head``) and each batch size of the training dataloader (by default 2 and 8, the sizes
synthesis allows), the demo's data-free recipe
(``configs/demo/dfkd_images_mosaic_deit_tiny_shapes.py``: the stored synthetic images of
``make demo``'s bank, half of the views mosaics, the teacher run online on every view) is
trained with the same schedule (the same number of iterations, so a larger batch sees
proportionally more images) and seed, then evaluated on the real demo val split (bbox mAP and
mAP50, pycocotools). Everything else is the config's: the backbone's LayerNorm, the teacher,
the learning rate. The student's head inherits the teacher's head (``inherit=['bbox_head']``),
whose norm is BatchNorm: a BN head starts from the teacher's affine weights and running
statistics, a GN head from the affine weights only.

Each run is validated 4 times during training; its mAP-against-iteration curve is kept in the
JSON. Finished runs are kept in ``benchmarks/results/norm_batch.json``, keyed by norm and
batch size, and skipped when the command is run again with the same settings (data, bank,
teacher checkpoint, iterations, seed; the bank by the hash of its ``summary.json``, the
checkpoint by the hash of its file) and the config unchanged (a hash of the resolved config is
stored with each run); ``--force`` reruns them. Writes ``norm_batch.json`` and
``norm_batch.md`` (a table: a row per norm, a column per batch size, bbox mAP (mAP50) in the
cells, the training times per row; the date and machine of the runs) under
``benchmarks/results/``. It needs ``make demo`` to have run (its data, teacher and bank).
"""
import argparse
import copy
import json
import os
import os.path as osp
import shutil
import sys
import time
from typing import Any, Dict, Optional, Sequence

from mmengine.config import Config

import mmdfkd  # noqa: F401  (registers modules, allows mmengine checkpoints)

# The demo machinery is not part of the installed package: it is tools/demo/ of this checkout.
sys.path.insert(0, osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'tools'))
from demo.experiment import (REPO_ROOT, config_fingerprint, evaluate,  # noqa: E402
                             experiment_config, train, validation_curve)
from demo.results import (add_demo_arguments, check_demo_inputs,  # noqa: E402
                          demo_input_settings, machine, measure_missing)

CONFIG = osp.join(REPO_ROOT, 'configs', 'demo', 'dfkd_images_mosaic_deit_tiny_shapes.py')
# Norm name -> (label in the report, norm_cfg of the student's neck and bbox_head; None keeps
# the config's).
NORMS = {
    'GN': ("GroupNorm (the config's)", None),
    'BN': ('BatchNorm', dict(type='BN', requires_grad=True)),
}
# The settings a kept run must share with the current command.
SETTING_KEYS = ('data_root', 'bank', 'bank_sha', 'teacher_checkpoint', 'teacher_sha', 'iters',
                'seed')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line (see the module docstring), its inputs checked
    (:func:`demo.results.check_demo_inputs`); ``iters`` is the config's when not given."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--norms', nargs='+', choices=list(NORMS), default=list(NORMS),
                        help="norm of the student's neck and bbox_head")
    parser.add_argument('--batch-sizes', nargs='+', type=int, default=[2, 8],
                        help='batch sizes of the training dataloader')
    parser.add_argument('--iters', type=int, default=None,
                        help="training iterations of every run (default: the config's)")
    add_demo_arguments(parser, 'work_dirs/benchmarks/norm_batch')
    args = parser.parse_args(argv)
    # A norm or batch size given twice is one run.
    args.norms = list(dict.fromkeys(args.norms))
    args.batch_sizes = list(dict.fromkeys(args.batch_sizes))
    small = [size for size in args.batch_sizes if size < 1]
    if small:
        parser.error(f'--batch-sizes must be 1 or more, got {small}')
    if args.iters is not None and args.iters < 1:
        parser.error(f'--iters must be 1 or more, got {args.iters}')
    try:
        check_demo_inputs(args.teacher_checkpoint, args.data_root, args.bank)
    except FileNotFoundError as error:
        parser.error(str(error))
    if args.iters is None:
        args.iters = Config.fromfile(CONFIG).train_cfg.max_iters
    return args


def row_key(norm: str, batch_size: int) -> str:
    """The key of a run in the results: ``'<norm>_batch<batch_size>'``."""
    return f'{norm}_batch{batch_size}'


def row_config(norm: str, batch_size: int, args: argparse.Namespace) -> Config:
    """The config of one run: the data-free recipe with its roots, work dir, seed, schedule and
    teacher checkpoint filled in (:func:`experiment_config`), the student's neck and bbox_head
    in ``norm``, ``batch_size`` images a training batch, and 4 validations for the curve."""
    cfg = experiment_config(CONFIG, osp.join(args.work_dir, row_key(norm, batch_size)),
                            args.data_root, args.seed, args.iters,
                            teacher_checkpoint=args.teacher_checkpoint,
                            train_data_root=args.bank)
    norm_cfg = NORMS[norm][1]
    if norm_cfg is not None:
        cfg.model.student.neck.norm_cfg = copy.deepcopy(norm_cfg)
        cfg.model.student.bbox_head.norm_cfg = copy.deepcopy(norm_cfg)
    cfg.train_dataloader.batch_size = batch_size
    cfg.train_cfg.val_interval = max(1, cfg.train_cfg.max_iters // 4)
    return cfg


def settings_of(args: argparse.Namespace) -> Dict[str, Any]:
    """The settings of ``SETTING_KEYS`` for this command, the bank and the teacher by the hash
    of their file (a bank remade by ``make demo`` has a new ``summary.json``)."""
    return dict(demo_input_settings(args), iters=args.iters)


def run_row(norm: str, batch_size: int, args: argparse.Namespace,
            config_sha: str) -> Dict[str, Any]:
    """Trains and evaluates one run; returns its metrics, curve, checkpoint, training time,
    and the date and machine it ran on."""
    cfg = row_config(norm, batch_size, args)
    shutil.rmtree(cfg.work_dir, ignore_errors=True)
    start = time.time()
    checkpoint = train(cfg)
    row = dict(norm=norm, batch_size=batch_size, iters=cfg.train_cfg.max_iters,
               train_s=round(time.time() - start, 1), config_sha=config_sha,
               date=time.strftime('%Y-%m-%d'), machine=machine(),
               curve=validation_curve(cfg.work_dir), checkpoint=checkpoint)
    row.update(evaluate(cfg, checkpoint))
    return row


def report_table(results: Dict[str, Any]) -> str:
    """The markdown report: the settings, a table with a row per norm of ``NORMS`` and a column
    per batch size of the results (cells: bbox mAP (mAP50), 'n/a' where not measured), the
    training times of each row, and what the cells are."""
    rows = results['rows']
    batches = sorted({row['batch_size'] for row in rows.values()})
    norms = [norm for norm in NORMS if any(row['norm'] == norm for row in rows.values())]
    # Kept runs may be from an earlier day or another machine than the latest ones.
    when = '; '.join(sorted({f"{row['date']}, {row['machine']}" for row in rows.values()}))
    lines = [f"{when}; {results['iters']} iterations at every batch size, seed "
             f"{results['seed']}; synthetic bank {results['bank']}, teacher "
             f"{results['teacher_checkpoint']}, evaluated on {results['data_root']} val.", '',
             "| student's neck + head norm | " + ' | '.join(f'batch {b}' for b in batches)
             + ' | train time (batch ' + ' / '.join(str(b) for b in batches) + ') |',
             '|---|' + '---|' * (len(batches) + 1)]
    for norm in norms:
        cells, times = [], []
        for batch in batches:
            row = rows.get(row_key(norm, batch))
            cells.append('n/a' if row is None
                         else f"{row['bbox_mAP']:.3f} ({row['bbox_mAP_50']:.3f})")
            times.append('n/a' if row is None else f"{row['train_s']:.0f} s")
        lines.append(f'| {NORMS[norm][0]} | ' + ' | '.join(cells) + ' | ' + ' / '.join(times)
                     + ' |')
    lines += ['', f'Cells: bbox mAP (mAP50) on the real val images of the data-free student '
              f'({osp.relpath(CONFIG, REPO_ROOT)}) with its neck and RetinaNet head in the '
              "row's norm, trained with that many images a batch; same iterations at every "
              "batch size. 'n/a': not measured."]
    return '\n'.join(lines) + '\n'


def write_results(results: Dict[str, Any], out_dir: str) -> None:
    """Writes ``norm_batch.json`` and ``norm_batch.md`` (:func:`report_table`) under
    ``out_dir``."""
    os.makedirs(out_dir, exist_ok=True)
    with open(osp.join(out_dir, 'norm_batch.json'), 'w') as f:
        json.dump(results, f, indent=2)
    table = report_table(results)
    with open(osp.join(out_dir, 'norm_batch.md'), 'w') as f:
        f.write(table)
    print(table)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    config_sha = config_fingerprint(CONFIG)
    jobs = {row_key(norm, batch): (norm, batch) for norm in args.norms
            for batch in args.batch_sizes}
    measure_missing('norm_batch', osp.join(args.out_dir, 'norm_batch.json'), settings_of(args),
                    config_sha, 'rows',
                    {key: f'{norm}, batch {batch}' for key, (norm, batch) in jobs.items()},
                    lambda key: run_row(*jobs[key], args, config_sha),
                    lambda results: write_results(results, args.out_dir), force=args.force)


if __name__ == '__main__':
    main()
