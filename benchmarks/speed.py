"""Speed benchmark of data-free distillation on the demo configs, as ratios measured in one run.

    python benchmarks/speed.py [--iters N]

Measures, on this machine:

* teacher forward+backward passes per synthetic image (counted on the teacher's backbone while
  one batch is inverted with the demo's settings; low-resolution steps are counted too, and
  their share given) and synthetic images per second (inversion, and a generator network's
  forward pass once trained);
* iteration time of distillation divided by the plain student's iteration time, with the
  teacher run online on real images (real-data KD), from a stored bank (teacher outputs read
  from disk), and data-free with inversion during training (synthesis included);
* bytes of one rank's synthesis state in a checkpoint, for the demo's synthesizers and for the
  COCO recipe's inversion shapes (:func:`synthesis_state_bytes`).

Iteration times are wall-clock times between consecutive iterations (hooks such as the
synthesis included), median over ``--iters`` iterations after ``--warmup``. Peak memory of a
distillation step against a plain step is measured by ``benchmarks/memory.py``.
Writes ``benchmarks/results/speed.json`` and ``speed.md``.
"""
import argparse
import io
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
from mmdfkd.models.synthesis import Synthesizer, build_synthesizer

# The demo machinery is not part of the installed package: it is tools/demo/ of this checkout.
sys.path.insert(0, osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'tools'))
from demo.experiment import REPO_ROOT, experiment_config, synthesize_bank  # noqa: E402

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
COCO_RECIPE = osp.join(REPO_ROOT, 'configs', 'dfkd_vit_det.py')


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


def _synthesizer_cfg(config: str) -> dict:
    """The synthesizer config of a data-free config's ``ImageSynthesisHook``."""
    from mmdfkd.utils import load_config
    return next(h for h in load_config(config).custom_hooks
                if h.type == 'ImageSynthesisHook').synthesizer


def _targets(synthesizer: Synthesizer, dataset, start: int, size: int):
    return synthesizer.targets_of([dataset[i]['data_samples']
                                   for i in range(start, start + size)])


def synthesis_cost(args: argparse.Namespace) -> Dict[str, Any]:
    """Teacher passes per inverted image, inversion and generator images per second."""
    register_all_modules()
    cfg = experiment_config(SYNTHESIS, osp.join(args.work_dir, 'synthesis'), args.data_root,
                            teacher_checkpoint=args.teacher_checkpoint)
    distiller = MODELS.build(cfg.model)
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    synthesizer = build_synthesizer(_synthesizer_cfg(SYNTHESIS), distiller, dataset)
    passes = dict(full=0, lowres=0)
    full_hw = tuple(dataset.img_size)

    def count(module, inputs, output):
        key = 'full' if tuple(inputs[0].shape[-2:]) == full_hw else 'lowres'
        passes[key] += inputs[0].shape[0]

    handle = distiller.teachers[0].backbone.register_forward_hook(count)
    rng = torch.Generator().manual_seed(0)
    targets = _targets(synthesizer, dataset, 0, args.batch_size)
    start = time.perf_counter()
    synthesizer.synthesize(targets, rng)
    inversion_s = time.perf_counter() - start
    handle.remove()
    num = args.batch_size
    result = dict(
        teacher_passes_per_image=(passes['full'] + passes['lowres']) / num,
        lowres_pass_share=passes['lowres'] / max(1, passes['full'] + passes['lowres']),
        inversion_images_per_s=num / inversion_s)

    generator = build_synthesizer(_synthesizer_cfg(GENERATOR), distiller, dataset)
    targets = _targets(generator, dataset, num, num)
    generator.synthesize(targets, rng)  # warm-up
    start = time.perf_counter()
    for _ in range(3):
        generator.synthesize(targets, rng)
    result['generator_images_per_s'] = 3 * num / (time.perf_counter() - start)
    return result


def _saved_bytes(obj: Any) -> int:
    """Bytes ``torch.save`` writes for ``obj``."""
    stream = io.BytesIO()
    torch.save(obj, stream)
    return stream.tell()


def synthesis_state_bytes(args: argparse.Namespace) -> Dict[str, Any]:
    """Bytes of one rank's synthesis state in a checkpoint (``ImageSynthesisHook``: the
    synthesizer's ``state_dict`` and the random stream), as it is when a checkpoint is
    largest: the buffer full, the cohort in progress at its last refine call before it
    finishes (one call per iteration), a generator network after an update.

    Measured for the demo's synthesizers and for the inversion shapes of the COCO recipe
    (``configs/dfkd_vit_det.py``: its image size, batch, buffer, steps), whose state is built
    at those sizes with the demo teacher (the state does not depend on the teacher; nothing is
    downloaded). For comparison, ``float_cohort_bytes`` is what the cohort would take as
    float pixels and Adam moments at full resolution, as checkpoints held it before.
    """
    from mmdfkd.utils import load_config
    register_all_modules()
    cfg = experiment_config(SYNTHESIS, osp.join(args.work_dir, 'state'), args.data_root,
                            teacher_checkpoint=args.teacher_checkpoint)
    distiller = MODELS.build(cfg.model)
    rng = torch.Generator().manual_seed(0)
    coco = load_config(COCO_RECIPE)
    results = {}
    for name, config, dataset_cfg, batch_size in (
            ('demo, inversion', SYNTHESIS, cfg.train_dataloader.dataset,
             cfg.train_dataloader.batch_size),
            ('COCO recipe, inversion', COCO_RECIPE, coco.train_dataloader.dataset,
             coco.train_dataloader.batch_size)):
        dataset = DATASETS.build(dataset_cfg)
        synthesizer_cfg = dict(_synthesizer_cfg(config), loss=_synthesizer_cfg(SYNTHESIS).loss)
        synthesizer = build_synthesizer(synthesizer_cfg, distiller, dataset)
        height, width = dataset.img_size
        first = 0
        while len(synthesizer.buffer) < synthesizer.buffer.capacity:
            synthesizer.buffer.add(torch.zeros(batch_size, 3, height, width, dtype=torch.uint8),
                                   _targets(synthesizer, dataset, first, batch_size))
            first += batch_size
        cohort = synthesizer.start(_targets(synthesizer, dataset, first, batch_size), rng)
        calls = -(-synthesizer.total_steps // synthesizer.steps_per_iter) - 1
        for _ in range(calls):  # what the state records of each call; the steps are skipped
            synthesizer.refine(cohort, 0, rng)
        synthesizer.cohort = cohort
        pixels = torch.zeros(batch_size, 3, height, width, requires_grad=True)
        adam = torch.optim.Adam([pixels])
        pixels.grad = torch.zeros_like(pixels)
        adam.step()
        results[name] = dict(
            state_bytes=_saved_bytes(dict(synthesizer=synthesizer.state_dict(),
                                          rng=rng.get_state())),
            buffer_images=len(synthesizer.buffer), image_hw=[height, width],
            batch_size=batch_size, refine_calls=calls,
            float_cohort_bytes=_saved_bytes(dict(pixels=pixels.detach(),
                                                 optimizer=adam.state_dict())))
    generator_cfg = experiment_config(GENERATOR, osp.join(args.work_dir, 'state_generator'),
                                      args.data_root, teacher_checkpoint=args.teacher_checkpoint)
    dataset = DATASETS.build(generator_cfg.train_dataloader.dataset)
    generator = build_synthesizer(_synthesizer_cfg(GENERATOR), distiller, dataset)
    generator.update(_targets(generator, dataset, 0, generator_cfg.train_dataloader.batch_size),
                     rng)  # Adam's moments exist after the first update
    results['demo, generator network'] = dict(
        state_bytes=_saved_bytes(dict(synthesizer=generator.state_dict(), rng=rng.get_state())))
    return results


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
                                   synthesis=synthesis_cost(args),
                                   synthesis_state=synthesis_state_bytes(args))
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
             *[f"| synthesis state in a checkpoint, per rank, {label} | "
               f"{row['state_bytes'] / 2**20:.1f} MiB"
               + (f" ({row['buffer_images']} buffered {row['image_hw'][0]}x"
                  f"{row['image_hw'][1]} images; a cohort of {row['batch_size']} as float "
                  f"pixels and Adam moments would add {row['float_cohort_bytes'] / 2**20:.1f} "
                  'MiB)' if 'buffer_images' in row else '') + ' |'
               for label, row in results['synthesis_state'].items()],
             f'| plain student iteration | {plain:.3f} s |']
    for label, row in results['distill'].items():
        lines.append(f"| distillation iteration / plain, {label} | {row['ratio_to_plain']:.2f} "
                     f"({row['iter_s']:.3f} s) |")
    with open(osp.join(args.out_dir, 'speed.md'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    print('\n'.join(lines))


if __name__ == '__main__':
    main()
