"""Deployment latency on the CPU: the demo student in PyTorch and in onnxruntime, and the demo
teacher in PyTorch, at the demo size (128x128) and at 800x1333, measured in one run.

    python benchmarks/deploy_latency.py [--runs N] [--warmup N] [--threads N]

Every model does the same work on one image: the whole detector from a resized image to final
detections, i.e. what the exported graph holds (``mmdfkd.deploy.OnnxDetector``: normalisation,
padding to the size divisor, backbone, neck, head, decoding and NMS with the config's
``test_cfg``). PyTorch runs that module in eager mode; onnxruntime (CPU provider) runs the
student's ONNX export (dynamic input size, as ``tools/export_onnx.py --dynamic`` writes it),
asked for its boxes, scores and labels. Weights are the demo's trained checkpoints, so the
decoding and NMS see real detections; the image is the first demo val image resized to each
size (loading and resizing are not timed). Latency is the median of ``--runs`` calls after
``--warmup``; torch and onnxruntime get the same number of threads. Writes
``benchmarks/results/deploy_latency.json`` and ``deploy_latency.md``.
"""
import argparse
import json
import os
import os.path as osp
import tempfile
import time
from typing import Any, Callable, Dict, Sequence, Tuple

import cv2
import numpy as np
import onnxruntime
import torch

import mmdfkd  # noqa: F401  (registers modules and the checked checkpoint loader)
from mmdfkd.deploy import OnnxDetector, export_onnx, load_detector
from mmdfkd.deploy.onnx_runtime import create_session
from mmdfkd.utils.model_stats import measure_latency_ms

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO = osp.join(REPO_ROOT, 'configs', 'demo')
SIZES = ((128, 128), (800, 1333))
STUDENT = 'student, PyTorch'
STUDENT_ONNX = 'student, onnxruntime'
TEACHER = 'teacher, PyTorch'
# A row's runner: input (H, W) -> the function to time.
Timed = Callable[[Tuple[int, int]], Callable[[], Any]]


def size_key(size: Sequence[int]) -> str:
    """``'HxW'``."""
    return f'{size[0]}x{size[1]}'


def latency_table(runners: Dict[str, Timed], sizes: Sequence[Tuple[int, int]], runs: int,
                  warmup: int) -> Dict[str, Dict[str, float]]:
    """Median latency of every runner at every size.

    Args:
        runners: Row name -> runner (input size -> the function to time).
        sizes: Input sizes (H, W).
        runs: Timed calls per row and size.
        warmup: Untimed calls before them.

    Returns:
        Row name -> ``'HxW'`` -> milliseconds.
    """
    table: Dict[str, Dict[str, float]] = {}
    for name, runner in runners.items():
        table[name] = {}
        for size in sizes:
            print(f'[deploy_latency] {name} at {size_key(size)}', flush=True)
            table[name][size_key(size)] = measure_latency_ms(runner(size), runs, warmup)
    return table


def markdown(results: Dict[str, Any]) -> str:
    """The report: one row per model and runtime, one column per size, and the ratios
    onnxruntime / PyTorch and student / teacher.

    Args:
        results: ``date``, ``machine``, ``runs``, ``warmup`` and ``latency_ms`` (row ->
            ``'HxW'`` -> ms, with the rows :data:`STUDENT`, :data:`STUDENT_ONNX` and
            :data:`TEACHER`).
    """
    latency = results['latency_ms']
    sizes = list(latency[STUDENT])
    lines = [f"{results['date']}, {results['machine']}; median of {results['runs']} runs "
             f"after {results['warmup']} warm-up runs, one image, from the resized image to "
             'final detections (decoding and NMS included).', '',
             '| model | ' + ' | '.join(f'{s} ms' for s in sizes) + ' |',
             '|---' * (len(sizes) + 1) + '|']
    for name, row in latency.items():
        lines.append(f'| {name} | ' + ' | '.join(f'{row[s]:.1f}' for s in sizes) + ' |')
    for label, top, bottom in (('student: onnxruntime / PyTorch', STUDENT_ONNX, STUDENT),
                               ('student / teacher, PyTorch', STUDENT, TEACHER),
                               ('student onnxruntime / teacher PyTorch', STUDENT_ONNX, TEACHER)):
        lines.append(f'| {label} | ' + ' | '.join(
            f'{latency[top][s] / latency[bottom][s]:.2f}x' for s in sizes) + ' |')
    return '\n'.join(lines) + '\n'


def resized_image(path: str, size: Tuple[int, int]) -> np.ndarray:
    """An image file resized to exactly (H, W), as float32 (1, 3, H, W) in BGR order."""
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f'{path} does not exist or is not an image')
    image = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32)


def pytorch_runner(detector: OnnxDetector, image_path: str) -> Timed:
    """Runs ``detector`` eagerly on the image resized to a size."""
    def runner(size: Tuple[int, int]) -> Callable[[], Any]:
        image = torch.from_numpy(resized_image(image_path, size))
        return lambda: detector(image, torch.ones(2))
    return runner


def onnxruntime_runner(onnx_file: str, image_path: str, threads: int) -> Timed:
    """Runs the ONNX file on the image resized to a size, for its detections."""
    session = create_session(onnx_file, threads)

    def runner(size: Tuple[int, int]) -> Callable[[], Any]:
        feed = dict(image=resized_image(image_path, size), scale_factor=np.ones(2, np.float32))
        return lambda: session.run(['boxes', 'scores', 'labels'], feed)
    return runner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--student-config',
                        default=osp.join(DEMO, 'dfkd_images_mosaic_deit_tiny_shapes.py'))
    parser.add_argument('--student-checkpoint', default='work_dirs/demo/student/iter_800.pth')
    parser.add_argument('--teacher-config', default=osp.join(DEMO, 'retinanet_r18_shapes.py'))
    parser.add_argument('--teacher-checkpoint', default='work_dirs/demo/teacher/iter_1500.pth')
    parser.add_argument('--image', default='data/demo/val/000001.png',
                        help='the image timed (resized to each size)')
    parser.add_argument('--runs', type=int, default=10, help='timed calls per model and size')
    parser.add_argument('--warmup', type=int, default=2, help='untimed calls first')
    parser.add_argument('--threads', type=int, default=1,
                        help='threads of torch and of onnxruntime (default 1)')
    parser.add_argument('--out-dir', default=osp.join(REPO_ROOT, 'benchmarks', 'results'))
    args = parser.parse_args()
    for path in (args.student_checkpoint, args.teacher_checkpoint, args.image):
        if not osp.isfile(path):
            parser.error(f'{path} does not exist: run `make demo` first, or pass its path.')
    torch.set_num_threads(args.threads)
    student, student_cfg = load_detector(args.student_config, args.student_checkpoint)
    teacher, _ = load_detector(args.teacher_config, args.teacher_checkpoint)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_file = osp.join(tmp, 'student.onnx')
        wrapper = export_onnx(student, student_cfg, onnx_file, dynamic=True)
        runners = {STUDENT: pytorch_runner(wrapper, args.image),
                   STUDENT_ONNX: onnxruntime_runner(onnx_file, args.image, args.threads),
                   TEACHER: pytorch_runner(OnnxDetector(teacher).eval(), args.image)}
        latency = latency_table(runners, SIZES, args.runs, args.warmup)
    results = dict(date=time.strftime('%Y-%m-%d'),
                   machine=f'{os.cpu_count()} CPU cores, {args.threads} thread(s), torch '
                           f'{torch.__version__}, onnxruntime {onnxruntime.__version__}',
                   runs=args.runs, warmup=args.warmup, latency_ms=latency)
    os.makedirs(args.out_dir, exist_ok=True)
    with open(osp.join(args.out_dir, 'deploy_latency.json'), 'w') as f:
        json.dump(results, f, indent=2)
    report = markdown(results)
    with open(osp.join(args.out_dir, 'deploy_latency.md'), 'w') as f:
        f.write(report)
    print(report)


if __name__ == '__main__':
    main()
