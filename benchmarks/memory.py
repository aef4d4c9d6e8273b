"""Peak memory of a distillation step against a plain student step, by batch and image size.

    python benchmarks/memory.py [--batch-sizes 1 2 4] [--sizes 128 192 256] [--device cpu]

For each batch size and (square) image size, in a fresh process, three steps are measured:

* ``student``: one training step of the plain ViT student
  (``configs/demo/retinanet_deit_tiny_shapes.py``): data preprocessing, forward, loss,
  backward and optimizer step;
* ``distill``: the same step of the real-data distiller
  (``configs/demo/kd_deit_tiny_shapes_real.py``: the student plus the frozen teacher's forward
  pass and the distillation losses), with a randomly initialised teacher (nothing is downloaded
  or read);
* ``inversion``: one full-resolution refinement step of data-free synthesis
  (``configs/demo/dfkd_deit_tiny_shapes.py``'s ``InversionSynthesizer`` settings): the
  teacher's forward and backward pass to the pixels of a batch, with the BN-statistics hooks.

Each is run once to warm up (lazy allocations such as Adam's moments), then measured; the
objects of one mode are freed before the next is built. On a GPU the peak is
``torch.cuda.max_memory_allocated`` during the step minus the memory allocated before it. On the
CPU it is the peak resident set size during the step (``VmHWM``, reset through
``/proc/self/clear_refs`` before the step; Linux only) minus the resident size before it; freed
heap memory is first given back to the system (glibc ``malloc_trim``), since the allocator
would otherwise keep the warm-up step's memory resident and the measured step would reuse it
without raising the peak. ``resident_mib`` is the resident size (or allocated CUDA memory)
before the step: the models, optimizer state and libraries.

Prints a table and writes ``benchmarks/results/memory.json`` and ``memory.md``.
"""
import argparse
import ctypes
import gc
import json
import os
import os.path as osp
import platform
import re
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Tuple

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO = osp.join(REPO_ROOT, 'configs', 'demo')
CONFIGS = dict(student=osp.join(DEMO, 'retinanet_deit_tiny_shapes.py'),
               distill=osp.join(DEMO, 'kd_deit_tiny_shapes_real.py'),
               inversion=osp.join(DEMO, 'dfkd_deit_tiny_shapes.py'))
MODES = ('student', 'distill', 'inversion')
MIB = 2**20


# ------------------------------------------------------------------------ one measurement
def _proc_status_kib(field: str) -> int:
    with open('/proc/self/status') as f:
        return int(re.search(rf'^{field}:\s+(\d+) kB', f.read(), re.M).group(1))


def peak_during(step: Callable[[], None], device: str) -> Tuple[float, float]:
    """Runs ``step`` once and measures its peak memory.

    Args:
        step: The step to measure.
        device: ``'cuda'`` or ``'cpu'``.

    Returns:
        ``(peak_mib, resident_mib)``: memory the step needed above what was held before it,
        and what was held before it (see the module docstring).
    """
    gc.collect()
    if device == 'cuda':
        import torch
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        step()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / MIB, before / MIB
    libc = ctypes.CDLL(None)
    if hasattr(libc, 'malloc_trim'):  # glibc
        libc.malloc_trim(0)
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')  # resets the peak resident set size (VmHWM) to the current one
    before = _proc_status_kib('VmRSS')
    step()
    return (_proc_status_kib('VmHWM') - before) / 1024, before / 1024


def _batch(batch_size: int, size: int, num_classes: int) -> dict:
    """A batch as the data loader gives it: uint8 images and two target boxes each."""
    import torch
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    rng = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for _ in range(batch_size):
        inputs.append(torch.randint(0, 256, (3, size, size), dtype=torch.uint8,
                                    generator=rng))
        sample = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size),
                                             scale_factor=(1., 1.)))
        boxes = torch.tensor([[0.1, 0.1, 0.5, 0.6], [0.4, 0.3, 0.9, 0.8]]) * size
        sample.gt_instances = InstanceData(
            bboxes=boxes, labels=torch.randint(0, num_classes, (2, ), generator=rng))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def measure(mode: str, batch_size: int, size: int, device: str, teacher_ckpt: str) -> dict:
    """Peak memory of one step of ``mode`` (see the module docstring) in this process."""
    import torch
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.optim import build_optim_wrapper

    from mmdfkd.models.synthesis import Targets, build_synthesizer
    from mmdfkd.utils import load_config
    register_all_modules()
    torch.manual_seed(0)
    cfg = load_config(CONFIGS[mode])
    for teacher in cfg.model.get('teachers', []):
        teacher.checkpoint = teacher_ckpt
    model = MODELS.build(cfg.model).to(device)
    num_classes = len(cfg.classes)
    data = _batch(batch_size, size, num_classes)

    if mode == 'inversion':
        hook = next(h for h in cfg.custom_hooks if h.type == 'ImageSynthesisHook')
        # The full-resolution step.
        synthesizer = build_synthesizer(
            dict(hook.synthesizer, lowres_steps=0, fp_sampling=None), model, dataset=None)
        samples = data['data_samples']
        targets = Targets([s.gt_instances.bboxes for s in samples],
                          [s.gt_instances.labels for s in samples], [s.metainfo for s in samples])
        rng = torch.Generator().manual_seed(0)
        cohort = synthesizer.start(targets, rng)

        def step() -> None:
            synthesizer.refine(cohort, 1, rng)
    else:
        model.train()
        optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)

        def step() -> None:
            model.train_step(data, optim_wrapper)

    step()  # warm-up: lazily allocated state (optimizer moments, caches)
    peak, resident = peak_during(step, device)
    return dict(mode=mode, batch_size=batch_size, size=size, device=device,
                peak_mib=round(peak, 1), resident_mib=round(resident, 1))


# ------------------------------------------------------------------------------ the sweep
def _save_random_teacher(path: str) -> None:
    import torch
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.runner import save_checkpoint

    from mmdfkd.utils import load_config
    register_all_modules()
    torch.manual_seed(0)
    teacher_cfg = load_config(CONFIGS['distill']).model.teachers[0].config
    teacher = MODELS.build(load_config(osp.join(DEMO, teacher_cfg)).model)
    save_checkpoint(dict(state_dict=teacher.state_dict()), path)


def _measure_in_subprocess(batch_size: int, size: int, device: str,
                           teacher_ckpt: str) -> List[dict]:
    """Every mode at one batch and image size, in a fresh process."""
    command = [sys.executable, osp.abspath(__file__), '--measure', '--batch-sizes',
               str(batch_size), '--sizes', str(size), '--device', device, '--teacher-checkpoint',
               teacher_ckpt]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT,
                            env={**os.environ, 'TIMM_USE_NAFLEXVIT': '0'})
    if result.returncode != 0:
        raise RuntimeError(f'Measuring batch {batch_size} at {size} px failed:\n'
                           f'{result.stderr[-3000:]}')
    return json.loads(result.stdout.strip().splitlines()[-1])


def table(rows: List[dict]) -> str:
    """The results as a Markdown table, one line per batch and image size."""
    lines = ['| batch | image | student step MiB | distillation step MiB | distill / student | '
             'inversion step MiB |', '|---:|---:|---:|---:|---:|---:|']
    for row in rows:
        lines.append(f'| {row["batch_size"]} | {row["size"]} | {row["student"]:.0f} | '
                     f'{row["distill"]:.0f} | {row["distill"] / row["student"]:.2f} | '
                     f'{row["inversion"]:.0f} |')
    return '\n'.join(lines)


def sweep(batch_sizes: List[int], sizes: List[int], device: str, out_dir: str) -> Dict:
    """Measures every mode at every batch and image size; writes the JSON and Markdown
    results into ``out_dir``.

    Returns:
        The JSON written: settings, environment and one row per batch and image size.
    """
    import torch
    started = time.time()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        teacher_ckpt = osp.join(tmp, 'teacher.pth')
        _save_random_teacher(teacher_ckpt)
        for batch_size in batch_sizes:
            for size in sizes:
                row = dict(batch_size=batch_size, size=size, resident_mib={})
                for result in _measure_in_subprocess(batch_size, size, device, teacher_ckpt):
                    row[result['mode']] = result['peak_mib']
                    row['resident_mib'][result['mode']] = result['resident_mib']
                rows.append(row)
                print(table([row]).splitlines()[-1], flush=True)
    report = dict(
        description='Peak memory of one step above what was held before it (MiB): plain '
        'student training step, distillation step (teacher forward + student '
        'forward/backward + losses + optimizer), data-free inversion step.',
        method='CUDA max_memory_allocated' if device == 'cuda' else
        'peak resident set size (VmHWM after clear_refs) minus resident size before the step',
        device=device, cpu=platform.processor() or platform.machine(),
        threads=torch.get_num_threads(), torch=torch.__version__,
        configs={mode: osp.relpath(path, REPO_ROOT) for mode, path in CONFIGS.items()},
        seconds=round(time.time() - started), rows=rows)
    os.makedirs(out_dir, exist_ok=True)
    with open(osp.join(out_dir, 'memory.json'), 'w') as f:
        json.dump(report, f, indent=2)
    with open(osp.join(out_dir, 'memory.md'), 'w') as f:
        f.write(f'# Peak memory of a distillation step ({device})\n\n{report["description"]} '
                f'Measured as {report["method"]}, in one fresh process per batch and image '
                'size, after one warm-up step. Written by `benchmarks/memory.py`.\n\n'
                f'{table(rows)}\n\nHeld before the step (models, optimizer state, libraries; '
                f'batch {rows[0]["batch_size"]}, {rows[0]["size"]} px), MiB: '
                + ', '.join(f'{mode} {value:.0f}'
                            for mode, value in rows[0]['resident_mib'].items()) + '.\n')
    return report


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--batch-sizes', type=int, nargs='+', default=[1, 2, 4])
    parser.add_argument('--sizes', type=int, nargs='+', default=[128, 192, 256],
                        help='square image sizes in pixels')
    parser.add_argument('--device', choices=['cpu', 'cuda'], default=None,
                        help='default: cuda if available, else cpu')
    parser.add_argument('--out-dir', default=osp.join(REPO_ROOT, 'benchmarks', 'results'))
    parser.add_argument('--measure', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--teacher-checkpoint', help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    sys.path.insert(0, REPO_ROOT)
    import torch

    import mmdfkd  # noqa: F401  (registers modules)
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    if device == 'cpu' and not osp.exists('/proc/self/clear_refs'):
        sys.exit('Measuring CPU memory needs Linux (/proc/self/clear_refs); run with '
                 '--device cuda on a GPU instead.')
    if args.measure:  # one setting, in the subprocess the sweep started
        print(json.dumps([measure(mode, args.batch_sizes[0], args.sizes[0], device,
                                  args.teacher_checkpoint) for mode in MODES]))
        return
    print(table([]))
    report = sweep(args.batch_sizes, args.sizes, device, args.out_dir)
    print(f'Wrote {args.out_dir}/memory.json and memory.md ({report["seconds"]} s).')


if __name__ == '__main__':
    main()
