"""Compactness benchmark: parameters, GFLOPs and CPU latency of each student relative to its
teacher, for the demo pair (128 px) and the COCO pairs (800x1333).

    python benchmarks/compactness.py [--runs N]

Models are built without weights (nothing is read or downloaded). GFLOPs count a multiply-add as
two, attention included (``mmdfkd.utils.model_stats``); latency is the median of ``--runs``
forward passes (backbone, neck, head; no box post-processing) on this machine's CPU, measured in
the same run for teacher and student. Writes ``benchmarks/results/compactness.json`` and
``compactness.md``.
"""
import argparse
import json
import os
import os.path as osp
import time
from typing import Any, Dict

import torch

import mmdfkd  # noqa: F401  (registers modules)
from mmdfkd.utils.model_stats import model_stats

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = osp.join(REPO_ROOT, 'configs')
# (pair name, teacher config, student config, input (H, W))
PAIRS = [
    ('demo: RetinaNet-R18 -> hybrid ViT (the teacher\'s frozen stem, width 128, 4 blocks, '
     'LSA; the data-free student of make demo)',
     osp.join(CONFIGS, 'demo', 'retinanet_r18_shapes.py'),
     osp.join(CONFIGS, 'demo', 'dfkd_convstem_images_mosaic_deit_tiny_shapes.py'), (128, 128)),
    ('demo: RetinaNet-R18 -> ViT (width 128, 6 blocks, 8 px patches, SPT/LSA)',
     osp.join(CONFIGS, 'demo', 'retinanet_r18_shapes.py'),
     osp.join(CONFIGS, 'demo', 'retinanet_deit_tiny_shapes.py'), (128, 128)),
    ('COCO: RetinaNet-R50 -> RetinaNet DeiT-Tiny', 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
     osp.join(CONFIGS, 'students', 'retinanet_deit_tiny_sfp_coco.py'), (800, 1333)),
    ('COCO: RetinaNet-R50 -> RetinaNet DeiT-Small', 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
     osp.join(CONFIGS, 'students', 'retinanet_deit_small_sfp_coco.py'), (800, 1333)),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--runs', type=int, default=5, help='timed forward passes per model')
    parser.add_argument('--out-dir', default=osp.join(REPO_ROOT, 'benchmarks', 'results'))
    args = parser.parse_args()
    results: Dict[str, Any] = dict(
        date=time.strftime('%Y-%m-%d'),
        machine=f'{os.cpu_count()} CPU cores, {torch.get_num_threads()} torch threads, '
                f'torch {torch.__version__}',
        pairs=[])
    lines = ['| pair | input | teacher params / GFLOPs / latency | student params / GFLOPs / '
             'latency | student / teacher: params, GFLOPs, latency |', '|---|---|---|---|---|']
    for name, teacher_cfg, student_cfg, shape in PAIRS:
        print(f'[compactness] {name}', flush=True)
        teacher = model_stats(teacher_cfg, shape=shape, runs=args.runs, warmup=1)
        student = model_stats(student_cfg, shape=shape, runs=args.runs, warmup=1)
        ratios = {key: student[key] / teacher[key] for key in ('params', 'gflops', 'latency_ms')}
        results['pairs'].append(dict(name=name, shape=list(shape), teacher=teacher,
                                     student=student, ratios=ratios))

        def cell(stats: Dict[str, Any]) -> str:
            return (f"{stats['params'] / 1e6:.2f}M / {stats['gflops']:.1f} / "
                    f"{stats['latency_ms']:.0f} ms")

        lines.append(f"| {name} | {shape[0]}x{shape[1]} | {cell(teacher)} | {cell(student)} | "
                     f"{ratios['params']:.2f}, {ratios['gflops']:.2f}, "
                     f"{ratios['latency_ms']:.2f} |")
    header = f"{results['date']}, {results['machine']}."
    os.makedirs(args.out_dir, exist_ok=True)
    with open(osp.join(args.out_dir, 'compactness.json'), 'w') as f:
        json.dump(results, f, indent=2)
    with open(osp.join(args.out_dir, 'compactness.md'), 'w') as f:
        f.write(header + '\n\n' + '\n'.join(lines) + '\n')
    print(header)
    print('\n'.join(lines))


if __name__ == '__main__':
    main()
