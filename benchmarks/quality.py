"""Quality benchmark on the demo data: how much of the teacher's mAP each way of training the
same ViT student keeps.

    python benchmarks/quality.py [--iters N] [--rows ROW ...]

Rows (same student, same schedule; each evaluated on the real demo val split with pycocotools):

* ``teacher``: the demo's CNN teacher (trained by ``make demo``; its checkpoint must exist);
* ``student_real``: the student trained on the real demo train images, no distillation;
* ``student_real_kd``: the student distilled from the teacher on the real train images;
* ``dfkd_inversion``: data-free, images inverted from the teacher during training;
* ``dfkd_generator``: data-free, images made by a generator network trained during training;
* ``dfkd_images``: data-free, augmented views of inverted images made once before training,
  the teacher run online on each view (what ``make demo`` runs);
* ``dfkd_bank``: data-free, from the same bank of inverted images with the teacher outputs
  stored with them, so no teacher runs during training.

The two bank rows report the synthesis time with their training time.

Each student row is validated 4 times during training, for the mAP-against-iteration plot.
Finished rows are kept in ``benchmarks/results/quality.json`` and skipped when the command is
run again with the same settings (data, schedule, seed, and the teacher checkpoint's content)
and their config unchanged (a hash of the resolved config is stored with each row); the rows
``make demo`` measured under the same conditions (teacher, student_real, dfkd_images) are
taken from its ``summary.json``, and its bank is reused by ``dfkd_bank`` (``--force`` reruns
them all). Writes ``quality.json``,
``quality.md`` and ``quality.png`` under ``benchmarks/results/``.
"""
import argparse
import json
import os
import os.path as osp
import shutil
import sys
import time
from typing import Any, Dict, List

import torch
from mmengine.config import Config

import mmdfkd  # noqa: F401  (registers modules, allows mmengine checkpoints)

# The demo machinery is not part of the installed package: it is tools/demo/ of this checkout.
sys.path.insert(0, osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'tools'))
from demo.experiment import (REPO_ROOT, config_fingerprint, evaluate,  # noqa: E402
                             experiment_config, file_fingerprint, synthesize_bank, train,
                             validation_curve)

DEMO = osp.join(REPO_ROOT, 'configs', 'demo')
ROWS = {
    'teacher': ('CNN teacher (RetinaNet-R18), real images', 'retinanet_r18_shapes.py'),
    'student_real': ('ViT student, real images, no KD', 'retinanet_deit_tiny_shapes.py'),
    'student_real_kd': ('ViT student, real images + KD', 'kd_deit_tiny_shapes_real.py'),
    'dfkd_inversion': ('ViT student, data-free (inversion)', 'dfkd_deit_tiny_shapes.py'),
    'dfkd_generator': ('ViT student, data-free (generator)',
                       'dfkd_generator_deit_tiny_shapes.py'),
    'dfkd_images': ('ViT student, data-free (stored images, teacher online)',
                    'dfkd_images_deit_tiny_shapes.py'),
    'dfkd_bank': ('ViT student, data-free (stored bank)', 'dfkd_bank_deit_tiny_shapes.py'),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data-root', default='data/demo', help='demo data (make demo)')
    parser.add_argument('--teacher-checkpoint', default='work_dirs/demo/teacher/iter_1500.pth',
                        help='the demo teacher (make demo trains it)')
    parser.add_argument('--work-dir', default='work_dirs/benchmarks/quality')
    parser.add_argument('--out-dir', default=osp.join(REPO_ROOT, 'benchmarks', 'results'))
    parser.add_argument('--iters', type=int, default=None,
                        help="training iterations of every student (default: the configs')")
    parser.add_argument('--num-synthetic', type=int, default=None,
                        help="images in the bank (default: the synthesis config's)")
    parser.add_argument('--rows', nargs='+', choices=list(ROWS), default=list(ROWS))
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--demo-summary', default='work_dirs/demo/summary.json',
                        help='take the rows `make demo` measured (teacher, student_real, '
                             'dfkd_bank) from its summary when the teacher and schedule match')
    parser.add_argument('--force', action='store_true',
                        help='rerun rows already measured (here or by the demo)')
    args = parser.parse_args()
    for path, what in ((args.teacher_checkpoint, 'teacher checkpoint'),
                       (osp.join(args.data_root, 'annotations', 'instances_val.json'),
                        'demo val annotations')):
        if not osp.isfile(path):
            sys.exit(f'error: the {what} {path} does not exist. Run `make demo` first (it '
                     'makes the data and trains the teacher), or pass --teacher-checkpoint / '
                     '--data-root.')
    return args


def bank_for(args: argparse.Namespace, results: Dict[str, Any]) -> Dict[str, Any]:
    """The synthetic bank of the bank rows: the one a row (or ``make demo``) already made with
    this teacher, else a new one. Returns ``bank``, ``synthesis_s`` and ``synthetic_images``."""
    for row in results['rows'].values():
        if row.get('bank') and osp.isfile(osp.join(row['bank'], 'summary.json')):
            return {k: row[k] for k in ('bank', 'synthesis_s', 'synthetic_images')}
    synthesis_cfg = osp.join(DEMO, 'dfkd_deit_tiny_shapes.py')
    num = args.num_synthetic or Config.fromfile(synthesis_cfg).num_synthetic
    start = time.time()
    bank = synthesize_bank(synthesis_cfg, osp.join(args.work_dir, 'bank'), num,
                           args.teacher_checkpoint, seed=args.seed)
    return dict(bank=bank['path'], synthesis_s=round(time.time() - start, 1),
                synthetic_images=num)


def run_row(name: str, args: argparse.Namespace, results: Dict[str, Any]) -> Dict[str, Any]:
    """Trains (students) and evaluates one row; returns its metrics, curve and times."""
    config = osp.join(DEMO, ROWS[name][1])
    work_dir = osp.join(args.work_dir, name)
    if name == 'teacher':
        cfg = experiment_config(config, work_dir, args.data_root, args.seed)
        start = time.time()
        metrics = evaluate(cfg, args.teacher_checkpoint)
        return dict(metrics, curve=[], eval_s=round(time.time() - start, 1),
                    config_sha=config_fingerprint(config))
    shutil.rmtree(work_dir, ignore_errors=True)
    real = name in ('student_real', 'student_real_kd')
    cfg = experiment_config(config, work_dir, args.data_root, args.seed, args.iters,
                            teacher_checkpoint=args.teacher_checkpoint,
                            train_data_root=args.data_root if real else None)
    cfg.train_cfg.val_interval = max(1, cfg.train_cfg.max_iters // 4)
    row: Dict[str, Any] = dict(config_sha=config_fingerprint(config))
    if name in ('dfkd_images', 'dfkd_bank'):
        row.update(bank_for(args, results))
        cfg.train_dataloader.dataset.data_root = row['bank']
    start = time.time()
    checkpoint = train(cfg)
    row['train_s'] = round(time.time() - start, 1)
    row['iters'] = cfg.train_cfg.max_iters
    row['curve'] = validation_curve(work_dir)
    row.update(evaluate(cfg, checkpoint))
    return row


def rows_from_demo(path: str, iters: int, teacher_sha: str) -> Dict[str, Any]:
    """The rows ``make demo`` already measured (teacher, student_real, dfkd_images), if its
    summary at ``path`` used the same teacher checkpoint and student schedule, each with its
    config as it is now."""
    if not osp.isfile(path):
        return {}
    with open(path) as f:
        demo = json.load(f)
    if (demo.get('student', {}).get('iters') != iters
            or demo['teacher'].get('checkpoint_sha') != teacher_sha):
        return {}
    stages = demo['stages_s']
    extras = dict(
        teacher={},
        student_real=dict(iters=iters, train_s=stages['student_real_train']),
        dfkd_images=dict(iters=iters, train_s=stages['student_train'],
                         synthesis_s=stages['synthesis'],
                         synthetic_images=demo['synthesis']['num_images'],
                         bank=demo['synthesis']['path']))
    entries = dict(teacher='teacher', student_real='student_real', dfkd_images='student')
    rows = {}
    for name, key in entries.items():
        entry = demo[key]
        if entry.get('config_sha') == config_fingerprint(osp.join(DEMO, ROWS[name][1])):
            rows[name] = dict(bbox_mAP=entry['bbox_mAP'], bbox_mAP_50=entry['bbox_mAP_50'],
                              curve=entry.get('curve', []), config_sha=entry['config_sha'],
                              source=path, **extras[name])
    return rows


def write_results(results: Dict[str, Any], out_dir: str) -> None:
    """Writes quality.json, quality.md and quality.png."""
    os.makedirs(out_dir, exist_ok=True)
    with open(osp.join(out_dir, 'quality.json'), 'w') as f:
        json.dump(results, f, indent=2)
    rows = results['rows']
    teacher = rows.get('teacher', {}).get('bbox_mAP')
    lines = [f"Demo data ({results['data_root']}), student schedule {results['iters']} "
             f"iterations; {results['date']}, {results['machine']}.", '',
             '| method | bbox mAP | mAP50 | mAP / teacher | train time |', '|---|---|---|---|---|']
    for name in ROWS:
        if name not in rows:
            continue
        row = rows[name]
        ratio = f"{row['bbox_mAP'] / teacher:.2f}" if teacher else 'n/a'
        seconds = row.get('train_s', 0) + row.get('synthesis_s', 0)
        timing = f'{seconds:.0f} s' if name != 'teacher' else 'n/a'
        lines.append(f"| {ROWS[name][0]} | {row['bbox_mAP']:.3f} | {row['bbox_mAP_50']:.3f} | "
                     f'{ratio} | {timing} |')
    with open(osp.join(out_dir, 'quality.md'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    print('\n'.join(lines))

    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    for name in ROWS:
        curve = rows.get(name, {}).get('curve')
        if curve:
            ax.plot([p['iter'] for p in curve], [p['bbox_mAP'] for p in curve], marker='o',
                    label=ROWS[name][0])
    if teacher:
        ax.axhline(teacher, color='k', linestyle='--', label=ROWS['teacher'][0])
    ax.set_xlabel('student training iteration')
    ax.set_ylabel('bbox mAP on demo val')
    ax.set_title('ViT student on the shapes demo')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc='upper center', bbox_to_anchor=(0.5, -0.14), ncol=2)
    fig.tight_layout()
    fig.savefig(osp.join(out_dir, 'quality.png'), dpi=120)


def main() -> None:
    args = parse_args()
    path = osp.join(args.out_dir, 'quality.json')
    if args.iters is None:
        args.iters = Config.fromfile(osp.join(DEMO, ROWS['student_real'][1])).train_cfg.max_iters
    settings = dict(data_root=args.data_root, iters=args.iters,
                    teacher_checkpoint=args.teacher_checkpoint,
                    teacher_sha=file_fingerprint(args.teacher_checkpoint), seed=args.seed)
    results: Dict[str, Any] = dict(settings, rows={})
    if osp.isfile(path) and not args.force:
        with open(path) as f:
            previous = json.load(f)
        if all(previous.get(k) == v for k, v in settings.items()):
            results['rows'] = {
                name: row for name, row in previous['rows'].items()
                if name in ROWS and row.get('config_sha') == config_fingerprint(
                    osp.join(DEMO, ROWS[name][1]))}
    results.update(date=time.strftime('%Y-%m-%d'),
                   machine=f'{os.cpu_count()} CPU cores, torch {torch.__version__}')
    if not args.force:
        for name, row in rows_from_demo(args.demo_summary, args.iters,
                                        settings['teacher_sha']).items():
            results['rows'].setdefault(name, row)
    todo: List[str] = [r for r in args.rows if r not in results['rows']]
    for name in todo:
        print(f'\n===== [quality {time.strftime("%H:%M:%S")}] {name} =====', flush=True)
        results['rows'][name] = run_row(name, args, results)
        write_results(results, args.out_dir)  # after every row: an interrupted run keeps them
    write_results(results, args.out_dir)


if __name__ == '__main__':
    main()
