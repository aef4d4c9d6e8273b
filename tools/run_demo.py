"""Run the embedded demo end to end: ``python tools/run_demo.py`` (what ``make demo`` runs).

Stages, each timed:
1. generate the shapes dataset (``data/demo``, skipped when it exists with the same parameters);
2. train the CNN teacher with plain mmdet (skipped when its checkpoint exists);
3. evaluate the teacher on the demo val split with pycocotools (CocoMetric).

A table is printed and ``WORK_DIR/summary.json`` written. The data-free distillation of the ViT
student (issue #6) is not part of the project yet; the summary says so rather than pretending.
"""
import argparse
import json
import os
import os.path as osp
import time
from typing import Any, Dict

from mmengine.runner import Runner

import mmdfkd  # noqa: F401  (registers modules, allows mmengine checkpoints)
from mmdfkd.datasets.shapes_coco import make_shapes_coco
from mmdfkd.utils import prepare_config, scale_iter_schedule

TEACHER_CONFIG = 'configs/demo/retinanet_r18_shapes.py'


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Run the mmdfkd demo end to end')
    parser.add_argument('--data-root', default='data/demo', help='where the demo data lives')
    parser.add_argument('--work-dir', default='work_dirs/demo', help='outputs of every stage')
    parser.add_argument('--teacher-iters', type=int, default=None,
                        help='teacher training iterations (default: the config\'s)')
    parser.add_argument('--seed', type=int, default=0, help='data and training seed')
    return parser.parse_args()


def _stage(name: str) -> None:
    print(f'\n===== [demo] {name} =====', flush=True)


def _runner_config(work_dir: str, data_root: str, seed: int, name: str):
    """The teacher config with the demo's data root, work dir and seed filled in."""
    cfg = prepare_config(TEACHER_CONFIG, work_dir=work_dir)
    data_root = data_root.rstrip('/') + '/'
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = data_root
    for evaluator in ('val_evaluator', 'test_evaluator'):
        cfg[evaluator].ann_file = data_root + 'annotations/instances_val.json'
    cfg.randomness = dict(seed=seed)
    cfg.experiment_name = name
    return cfg


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
    cfg = _runner_config(work_dir, args.data_root, args.seed, 'demo_teacher_train')
    if args.teacher_iters is not None:
        scale_iter_schedule(cfg, args.teacher_iters)
    runner = Runner.from_cfg(cfg)
    runner.train()
    ckpt = osp.join(work_dir, f'iter_{cfg.train_cfg.max_iters}.pth')
    with open(done_marker, 'w') as f:
        f.write(ckpt)
    return ckpt


def evaluate(args: argparse.Namespace, ckpt: str) -> Dict[str, float]:
    """Evaluates a checkpoint of the teacher config on the demo val split."""
    cfg = _runner_config(osp.join(args.work_dir, 'teacher_eval'), args.data_root, args.seed,
                         'demo_teacher_eval')
    cfg.load_from = ckpt
    runner = Runner.from_cfg(cfg)
    return runner.test()


def count_params(ckpt: str) -> int:
    """Number of parameters stored in a checkpoint's state dict."""
    import torch
    state = torch.load(ckpt, map_location='cpu')['state_dict']
    return int(sum(v.numel() for k, v in state.items() if not k.endswith(
        ('running_mean', 'running_var', 'num_batches_tracked'))))


def main() -> None:
    args = parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    summary: Dict[str, Any] = {'stages_s': {}}

    _stage('1/3 demo data')
    start = time.time()
    data_info = make_shapes_coco(args.data_root, seed=args.seed)
    summary['data'] = data_info
    summary['stages_s']['data'] = round(time.time() - start, 1)

    _stage('2/3 teacher training (plain mmdet, real demo images)')
    start = time.time()
    ckpt = train_teacher(args)
    summary['stages_s']['teacher_train'] = round(time.time() - start, 1)

    _stage('3/3 teacher evaluation on demo val (pycocotools)')
    start = time.time()
    metrics = evaluate(args, ckpt)
    summary['stages_s']['teacher_eval'] = round(time.time() - start, 1)
    summary['teacher'] = dict(
        config=TEACHER_CONFIG,
        checkpoint=ckpt,
        bbox_mAP=metrics['coco/bbox_mAP'],
        bbox_mAP_50=metrics['coco/bbox_mAP_50'],
        params=count_params(ckpt))
    summary['student'] = None
    summary['note'] = ('Data-free distillation of the ViT student is not implemented yet '
                       '(issue #6); this demo runs the teacher stages only.')

    path = osp.join(args.work_dir, 'summary.json')
    with open(path, 'w') as f:
        json.dump(summary, f, indent=2)

    teacher = summary['teacher']
    print('\n| model | bbox mAP | mAP50 | params |')
    print('|---|---|---|---|')
    print(f"| teacher RetinaNet-R18 | {teacher['bbox_mAP']:.3f} | {teacher['bbox_mAP_50']:.3f} "
          f"| {teacher['params'] / 1e6:.2f}M |")
    print(f"\nstage times (s): {summary['stages_s']}")
    print(f'[demo] {summary["note"]}')
    print(f'[demo] summary written to {path}')


if __name__ == '__main__':
    main()
