"""Run the embedded demo end to end: ``python tools/run_demo.py`` (what ``make demo`` runs).

Stages, each timed and announced as it starts:

1. generate the shapes dataset (``data/demo``; reused when it exists with the same parameters);
2. train the CNN teacher with plain mmdet on the demo train images (skipped when its checkpoint
   exists: delete ``WORK_DIR/teacher/teacher_checkpoint.txt`` to retrain);
3. evaluate the teacher on the demo val split (pycocotools, through CocoMetric);
4. train the ViT student on the real demo train images, without distillation (``student_real``:
   the reference that data-free distillation is measured against);
5. synthesize images from the frozen teacher alone (BatchNorm-statistics and box-conditioned
   inversion, ``tools/generate_synthetic.py``) and store them;
6. distill the teacher, with the same schedule, into the hybrid ViT student (the teacher's stem
   and first stage, inherited and frozen, under a 4-block ViT:
   ``configs/demo/_base_/models/conv_stem_r18.py``) on augmented views of those synthetic
   images, half of them mosaics of four (new scenes, relabeled by the teacher), the teacher run
   online on each view: no real training image is read;
7. evaluate both students on demo val, and measure parameters, GFLOPs and CPU latency of teacher
   and students at the demo's image size.

A table is printed and ``WORK_DIR/summary.json`` written, with ``teacher``, ``student`` (data
free) and ``student_real`` entries (``bbox_mAP``, ``bbox_mAP_50``, ``params``, ``gflops``,
``latency_ms``, stage times), the ``retention`` (data-free student mAP / teacher mAP) and the
``data_free_efficiency`` (data-free student mAP / real-data student mAP).
"""
import argparse
import json
import os
import os.path as osp
import platform
import shutil
import time
from typing import Any, Callable, Dict, Optional

import torch
from mmengine.config import Config

import mmdfkd  # noqa: F401  (registers modules, allows mmengine checkpoints)
from demo.experiment import (REPO_ROOT, config_fingerprint, evaluate, experiment_config,
                             file_fingerprint, synthesize_bank, train, validation_curve)
from demo.shapes_coco import make_shapes_coco
from mmdfkd.utils.model_stats import model_stats

CONFIG_DIR = osp.join(REPO_ROOT, 'configs', 'demo')
TEACHER_CONFIG = osp.join(CONFIG_DIR, 'retinanet_r18_shapes.py')
STUDENT_REAL_CONFIG = osp.join(CONFIG_DIR, 'retinanet_deit_tiny_shapes.py')
SYNTHESIS_CONFIG = osp.join(CONFIG_DIR, 'dfkd_deit_tiny_shapes.py')
STUDENT_CONFIG = osp.join(CONFIG_DIR, 'dfkd_convstem_images_mosaic_deit_tiny_shapes.py')
# Validations on demo val during each student's training (the mAP-against-iteration curves).
VALIDATIONS = 4
# The demo dataset: 128 px images, 1 to 4 objects each, sides 12% to 55% of the image.
DATA = dict(num_train=1000, num_val=200, img_size=128, objects_per_image=(1, 4),
            scale_range=(0.12, 0.55))


def parse_args(argv: Optional[list] = None) -> argparse.Namespace:
    """Parse the command line (all flags have the demo's defaults)."""
    parser = argparse.ArgumentParser(description='Run the mmdfkd demo end to end')
    parser.add_argument('--data-root', default='data/demo', help='where the demo data lives')
    parser.add_argument('--work-dir', default='work_dirs/demo', help='outputs of every stage')
    parser.add_argument('--num-train', type=int, default=DATA['num_train'],
                        help='demo train images (default: %(default)s)')
    parser.add_argument('--num-val', type=int, default=DATA['num_val'],
                        help='demo val images (default: %(default)s)')
    parser.add_argument('--teacher-iters', type=int, default=None,
                        help="teacher training iterations (default: the teacher config's)")
    parser.add_argument('--student-iters', type=int, default=None,
                        help="training iterations of both students (default: the student "
                             "config's)")
    parser.add_argument('--num-synthetic', type=int, default=None,
                        help='synthetic images to generate (default: the synthesis config\'s '
                             '`num_synthetic`)')
    parser.add_argument('--objects-per-image', type=int, nargs=2, metavar=('MIN', 'MAX'),
                        default=DATA['objects_per_image'],
                        help='objects per demo image (default: %(default)s); other values '
                             'make a demo variant (use another --data-root and --work-dir)')
    parser.add_argument('--scale-range', type=float, nargs=2, metavar=('MIN', 'MAX'),
                        default=DATA['scale_range'],
                        help="objects' sides as fractions of the image side (default: "
                             '%(default)s)')
    parser.add_argument('--seed', type=int, default=0, help='data and training seed')
    args = parser.parse_args(argv)
    for name in ('num_train', 'num_val', 'teacher_iters', 'student_iters', 'num_synthetic'):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f'--{name.replace("_", "-")} must be at least 1, got {value}')
    return args


def _stage(index: int, name: str) -> None:
    print(f'\n===== [demo {time.strftime("%H:%M:%S")}] {index}/7 {name} =====', flush=True)


def _timed(summary: Dict[str, Any], key: str, fn: Callable[[], Any]) -> Any:
    """Runs ``fn``, records its wall time in ``summary['stages_s'][key]``, returns its result."""
    start = time.time()
    result = fn()
    summary['stages_s'][key] = round(time.time() - start, 1)
    return result


def train_teacher(args: argparse.Namespace) -> str:
    """Trains the teacher unless a finished checkpoint exists; returns the checkpoint path."""
    work_dir = osp.join(args.work_dir, 'teacher')
    done_marker = osp.join(work_dir, 'teacher_checkpoint.txt')
    if osp.isfile(done_marker):
        with open(done_marker) as f:
            ckpt = f.read().strip()
        if osp.isfile(ckpt):
            print(f'[demo] teacher checkpoint {ckpt} exists: training skipped '
                  f'(delete {done_marker} to retrain)')
            return ckpt
    ckpt = train(experiment_config(TEACHER_CONFIG, work_dir, args.data_root, args.seed,
                                   args.teacher_iters, train_data_root=args.data_root))
    with open(done_marker, 'w') as f:
        f.write(ckpt)
    return ckpt


def synthesize(args: argparse.Namespace, teacher_ckpt: str) -> Dict[str, Any]:
    """Generates the synthetic bank (images and teacher outputs); returns its key figures."""
    out = osp.join(args.work_dir, 'synthetic_bank')
    shutil.rmtree(out, ignore_errors=True)  # a bank is tied to one teacher checkpoint
    num = args.num_synthetic or Config.fromfile(SYNTHESIS_CONFIG).num_synthetic
    bank = synthesize_bank(SYNTHESIS_CONFIG, out, num, teacher_ckpt, seed=args.seed)
    return dict(path=out, num_images=bank['num_images'],
                images_per_second=round(bank['images_per_second'], 3),
                teacher_mAP_on_synthetic=bank['fidelity']['bbox_mAP'],
                teacher_mAP_50_on_synthetic=bank['fidelity']['bbox_mAP_50'])


def efficiency_stats(config: str, shape: tuple) -> Dict[str, Any]:
    """Parameters, GFLOPs and median CPU latency of a config's (student) detector."""
    stats = model_stats(config, shape=shape, runs=10, warmup=2)
    return {key: stats[key] for key in ('params', 'gflops', 'latency_ms')}


def print_table(summary: Dict[str, Any]) -> None:
    """Prints the demo's results as a markdown table."""
    rows = [('teacher', 'RetinaNet-R18 CNN, real images'),
            ('student_real', 'ViT student, real images (no KD)'),
            ('student', 'hybrid ViT student (teacher\'s stem), data-free KD')]
    print('\n| model | bbox mAP | mAP50 | params | GFLOPs | CPU latency | train time |')
    print('|---|---|---|---|---|---|---|')
    for key, label in rows:
        entry = summary[key]
        print(f"| {label} | {entry['bbox_mAP']:.3f} | {entry['bbox_mAP_50']:.3f} "
              f"| {entry['params'] / 1e6:.2f}M | {entry['gflops']:.2f} "
              f"| {entry['latency_ms']:.1f} ms | {entry['train_s']:.0f} s |")
    print(f"\nretention (data-free student / teacher mAP): {summary['retention']:.2f}")
    print(f"data-free efficiency (data-free / real-data student mAP): "
          f"{summary['data_free_efficiency']:.2f}")
    print(f"stage times (s): {summary['stages_s']}")


def main(argv: Optional[list] = None) -> Dict[str, Any]:
    args = parse_args(argv)
    os.makedirs(args.work_dir, exist_ok=True)
    summary: Dict[str, Any] = dict(
        date=time.strftime('%Y-%m-%d %H:%M'), machine=dict(
            processor=platform.processor() or platform.machine(), cpus=os.cpu_count(),
            torch_threads=torch.get_num_threads(), torch=torch.__version__),
        stages_s={})
    demo_start = time.time()

    _stage(1, 'demo data')
    data = dict(DATA, num_train=args.num_train, num_val=args.num_val,
                objects_per_image=tuple(args.objects_per_image),
                scale_range=tuple(args.scale_range))
    summary['data'] = _timed(summary, 'data',
                             lambda: make_shapes_coco(args.data_root, seed=args.seed, **data))
    shape = (data['img_size'], data['img_size'])

    _stage(2, 'teacher training (plain mmdet, real demo images)')
    teacher_ckpt = _timed(summary, 'teacher_train', lambda: train_teacher(args))

    _stage(3, 'teacher evaluation on demo val (pycocotools)')
    teacher_cfg = experiment_config(TEACHER_CONFIG, osp.join(args.work_dir, 'teacher_eval'),
                                    args.data_root, args.seed)
    teacher = _timed(summary, 'teacher_eval', lambda: evaluate(teacher_cfg, teacher_ckpt))

    _stage(4, 'ViT student on the real demo images, no distillation (reference)')
    real_cfg = experiment_config(STUDENT_REAL_CONFIG, osp.join(args.work_dir, 'student_real'),
                                 args.data_root, args.seed, args.student_iters,
                                 train_data_root=args.data_root)
    real_cfg.train_cfg.val_interval = max(1, real_cfg.train_cfg.max_iters // VALIDATIONS)
    real_ckpt = _timed(summary, 'student_real_train', lambda: train(real_cfg))
    student_real = _timed(summary, 'student_real_eval', lambda: evaluate(real_cfg, real_ckpt))

    _stage(5, 'synthetic images from the frozen teacher (no real image read)')
    summary['synthesis'] = _timed(summary, 'synthesis', lambda: synthesize(args, teacher_ckpt))

    _stage(6, 'data-free distillation of the ViT student from the synthetic images')
    student_cfg = experiment_config(STUDENT_CONFIG, osp.join(args.work_dir, 'student'),
                                    args.data_root, args.seed, args.student_iters,
                                    teacher_checkpoint=teacher_ckpt,
                                    train_data_root=summary['synthesis']['path'])
    student_cfg.train_cfg.val_interval = max(1, student_cfg.train_cfg.max_iters // VALIDATIONS)
    student_ckpt = _timed(summary, 'student_train', lambda: train(student_cfg))

    _stage(7, 'data-free student evaluation; parameters, GFLOPs, CPU latency')
    student = _timed(summary, 'student_eval', lambda: evaluate(student_cfg, student_ckpt))
    teacher_stats, real_stats, student_stats = _timed(summary, 'model_stats', lambda: (
        efficiency_stats(TEACHER_CONFIG, shape), efficiency_stats(STUDENT_REAL_CONFIG, shape),
        efficiency_stats(STUDENT_CONFIG, shape)))

    stages = summary['stages_s']
    summary['teacher'] = dict(config=TEACHER_CONFIG,
                              config_sha=config_fingerprint(TEACHER_CONFIG),
                              checkpoint=teacher_ckpt,
                              checkpoint_sha=file_fingerprint(teacher_ckpt), **teacher,
                              **teacher_stats, train_s=stages['teacher_train'])
    summary['student_real'] = dict(config=STUDENT_REAL_CONFIG,
                                   config_sha=config_fingerprint(STUDENT_REAL_CONFIG),
                                   checkpoint=real_ckpt,
                                   **student_real, **real_stats,
                                   train_s=stages['student_real_train'],
                                   iters=real_cfg.train_cfg.max_iters,
                                   curve=validation_curve(real_cfg.work_dir))
    summary['student'] = dict(config=STUDENT_CONFIG,
                              config_sha=config_fingerprint(STUDENT_CONFIG),
                              checkpoint=student_ckpt, **student,
                              **student_stats,
                              train_s=stages['synthesis'] + stages['student_train'],
                              iters=student_cfg.train_cfg.max_iters,
                              curve=validation_curve(student_cfg.work_dir))
    summary['retention'] = round(student['bbox_mAP'] / max(teacher['bbox_mAP'], 1e-9), 3)
    summary['data_free_efficiency'] = round(
        student['bbox_mAP'] / max(student_real['bbox_mAP'], 1e-9), 3)
    summary['total_s'] = round(time.time() - demo_start, 1)

    path = osp.join(args.work_dir, 'summary.json')
    with open(path, 'w') as f:
        json.dump(summary, f, indent=2)
    print_table(summary)
    print(f'[demo] total {summary["total_s"] / 60:.1f} min; summary written to {path}')
    return summary


if __name__ == '__main__':
    main()
