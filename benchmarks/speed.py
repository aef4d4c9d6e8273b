"""Speed benchmark of data-free distillation on the demo configs, as ratios measured in one run.

    python benchmarks/speed.py [--iters N]

Measures, on this machine:

* teacher forward+backward passes per synthetic image (counted on the teacher's backbone while
  one batch is inverted with the demo's settings; low-resolution steps are counted too, and
  their share given) and synthetic images per second (inversion, and a generator network's
  forward pass once trained);
* iteration time of distillation divided by the plain student's iteration time, with the
  teacher run online on real images (real-data KD), from a stored bank (teacher outputs read
  from disk), and data-free with inversion during training (synthesis included).

Iteration times are wall-clock times between consecutive iterations (hooks such as the
synthesis included), median over ``--iters`` iterations after ``--warmup``. Peak memory of a
distillation step against a plain step is measured by ``benchmarks/memory.py``.
Writes ``benchmarks/results/speed.json`` and ``speed.md``.
"""
import argparse
import json
import os
import os.path as osp
import shutil
import statistics
import sys
import time
from typing import Any, Dict, List, Optional

import torch
from mmdet.registry import DATASETS, HOOKS, MODELS
from mmdet.utils import register_all_modules
from mmengine.hooks import Hook
from mmengine.runner import Runner

import mmdfkd  # noqa: F401  (registers modules, allows mmengine checkpoints)
from mmdfkd.models.synthesis import DetectorInverter
from mmdfkd.models.synthesis.generator_training import (DEFAULT_GENERATOR_OPTIM_WRAPPER,
                                                       build_generator, generate_images)
from mmdfkd.utils.experiment import REPO_ROOT, experiment_config, synthesize_bank

DEMO = osp.join(REPO_ROOT, 'configs', 'demo')
PLAIN = osp.join(DEMO, 'retinanet_deit_tiny_shapes.py')
# label: (config, whether it trains from the synthetic bank)
DISTILL = {
    'online teacher, real images (real-data KD)': ('kd_deit_tiny_shapes_real.py', False),
    'online teacher, stored synthetic images (make demo)': ('dfkd_images_deit_tiny_shapes.py',
                                                            True),
    'stored bank (images and teacher outputs)': ('dfkd_bank_deit_tiny_shapes.py', True),
    'data-free, inversion during training': ('dfkd_deit_tiny_shapes.py', False),
    'data-free, generator during training': ('dfkd_generator_deit_tiny_shapes.py', False),
}
SYNTHESIS = osp.join(DEMO, 'dfkd_deit_tiny_shapes.py')
GENERATOR = osp.join(DEMO, 'dfkd_generator_deit_tiny_shapes.py')


@HOOKS.register_module(force=True)
class IterWallTimeHook(Hook):
    """Records the wall time between consecutive ``before_train_iter`` calls (everything an
    iteration costs, other hooks included) in ``self.times``."""

    priority = 'HIGHEST'

    def __init__(self) -> None:
        self.times: List[float] = []
        self._last = None

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.times.append(now - self._last)
        self._last = now


def iteration_time(config: str, args: argparse.Namespace, work_dir: str,
                   bank: Optional[str] = None) -> float:
    """Median wall time of a training iteration of ``config`` after the warm-up."""
    cfg = experiment_config(config, work_dir, args.data_root, iters=args.warmup + args.iters + 1,
                            teacher_checkpoint=args.teacher_checkpoint,
                            train_data_root=bank or (None if 'dfkd' in config
                                                     else args.data_root))
    cfg.train_cfg.val_interval = 10 ** 9
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=10 ** 9)
    for hook in cfg.get('custom_hooks', []):
        hook.pop('vis_interval', None)
    cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [dict(type='IterWallTimeHook')]
    runner = Runner.from_cfg(cfg)
    timer = next(h for h in runner.hooks if isinstance(h, IterWallTimeHook))
    runner.train()
    return statistics.median(timer.times[args.warmup:])


def _batch(dataset, start: int, size: int):
    samples = [dataset[i]['data_samples'] for i in range(start, start + size)]
    return ([s.gt_instances.bboxes.tensor.float() for s in samples],
            [s.gt_instances.labels for s in samples], [dict(s.metainfo) for s in samples])


def synthesis_cost(args: argparse.Namespace) -> Dict[str, Any]:
    """Teacher passes per inverted image, inversion and generator images per second."""
    register_all_modules()
    cfg = experiment_config(SYNTHESIS, osp.join(args.work_dir, 'synthesis'), args.data_root,
                            teacher_checkpoint=args.teacher_checkpoint)
    hook = next(h for h in cfg.custom_hooks if h.type == 'SyntheticImageGeneratorHook')
    distiller = MODELS.build(cfg.model)
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    inverter = DetectorInverter.from_distiller(distiller, **hook.inversion)
    passes = dict(full=0, lowres=0)
    full_hw = tuple(dataset.img_size)

    def count(module, inputs, output):
        key = 'full' if tuple(inputs[0].shape[-2:]) == full_hw else 'lowres'
        passes[key] += inputs[0].shape[0]

    handle = distiller.teachers[0].backbone.register_forward_hook(count)
    rng = torch.Generator().manual_seed(0)
    boxes, labels, meta = _batch(dataset, 0, args.batch_size)
    start = time.perf_counter()
    cohort = inverter.start(boxes, labels, meta, full_hw, rng)
    inverter.refine(cohort, inverter.total_steps, rng)
    inversion_s = time.perf_counter() - start
    handle.remove()
    num = args.batch_size
    result = dict(
        teacher_passes_per_image=(passes['full'] + passes['lowres']) / num,
        lowres_pass_share=passes['lowres'] / max(1, passes['full'] + passes['lowres']),
        inversion_images_per_s=num / inversion_s)

    gen_hook = next(h for h in experiment_config(
        GENERATOR, osp.join(args.work_dir, 'generator'), args.data_root).custom_hooks
        if h.type == 'SyntheticImageGeneratorHook')
    network, _ = build_generator(dict(dict(type='BoxConditionedGenerator'),
                                      **gen_hook.get('generator', {})),
                                 DEFAULT_GENERATOR_OPTIM_WRAPPER, dataset, 'cpu')
    network.eval()
    boxes, labels, _ = _batch(dataset, num, num)
    with torch.no_grad():
        generate_images(network, boxes, labels, rng)  # warm-up
        start = time.perf_counter()
        for _ in range(3):
            generate_images(network, boxes, labels, rng)
    result['generator_images_per_s'] = 3 * num / (time.perf_counter() - start)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data-root', default='data/demo')
    parser.add_argument('--teacher-checkpoint', default='work_dirs/demo/teacher/iter_1500.pth')
    parser.add_argument('--work-dir', default='work_dirs/benchmarks/speed')
    parser.add_argument('--out-dir', default=osp.join(REPO_ROOT, 'benchmarks', 'results'))
    parser.add_argument('--iters', type=int, default=20, help='timed iterations per config')
    parser.add_argument('--warmup', type=int, default=5, help='untimed iterations first')
    parser.add_argument('--batch-size', type=int, default=8, help='images inverted together')
    parser.add_argument('--bank-size', type=int, default=32, help='images in the timed bank')
    args = parser.parse_args()
    if not osp.isfile(args.teacher_checkpoint):
        sys.exit(f'error: the teacher checkpoint {args.teacher_checkpoint} does not exist. Run '
                 '`make demo` first, or pass --teacher-checkpoint.')
    shutil.rmtree(args.work_dir, ignore_errors=True)

    print('[speed] synthesis cost', flush=True)
    results: Dict[str, Any] = dict(date=time.strftime('%Y-%m-%d'),
                                   machine=f'{os.cpu_count()} CPU cores, torch '
                                           f'{torch.__version__}, {torch.get_num_threads()} '
                                           'threads',
                                   synthesis=synthesis_cost(args))
    bank = synthesize_bank(SYNTHESIS, osp.join(args.work_dir, 'bank'), args.bank_size,
                           args.teacher_checkpoint)['path']
    print('[speed] iteration times', flush=True)
    plain = iteration_time(PLAIN, args, osp.join(args.work_dir, 'plain'))
    results['plain_student_iter_s'] = plain
    results['distill'] = {}
    for label, (config, from_bank) in DISTILL.items():
        seconds = iteration_time(osp.join(DEMO, config), args,
                                 osp.join(args.work_dir, config[:-3]), bank if from_bank else None)
        results['distill'][label] = dict(iter_s=seconds, ratio_to_plain=seconds / plain)

    os.makedirs(args.out_dir, exist_ok=True)
    with open(osp.join(args.out_dir, 'speed.json'), 'w') as f:
        json.dump(results, f, indent=2)
    syn = results['synthesis']
    lines = [f"{results['date']}, {results['machine']}; demo configs, batch 8, 128 px.", '',
             '| measure | value |', '|---|---|',
             f"| teacher forward+backward passes per synthetic image | "
             f"{syn['teacher_passes_per_image']:.0f} ({syn['lowres_pass_share']:.0%} at half "
             f"resolution) |",
             f"| synthetic images per second, inversion | {syn['inversion_images_per_s']:.2f} |",
             f"| synthetic images per second, trained generator | "
             f"{syn['generator_images_per_s']:.1f} |",
             f'| plain student iteration | {plain:.3f} s |']
    for label, row in results['distill'].items():
        lines.append(f"| distillation iteration / plain, {label} | {row['ratio_to_plain']:.2f} "
                     f"({row['iter_s']:.3f} s) |")
    with open(osp.join(args.out_dir, 'speed.md'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    print('\n'.join(lines))


if __name__ == '__main__':
    main()
