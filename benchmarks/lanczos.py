"""Lanczos against bilinear resizing, where resizing changes results.

    python benchmarks/lanczos.py [--parts inversion upscaling] [--num N] [--seed S]
                                 [--data-root DIR] [--teacher-checkpoint PTH]
                                 [--student-config CFG] [--student-checkpoint PTH] [--force]

1. **Inversion** (``inversion``): the demo's inversion (``configs/demo/dfkd_deit_tiny_shapes.py``:
   60 steps at half size, then 20 at full size) with the low-resolution images brought to full
   size by each ``upsample`` mode of ``InversionSynthesizer`` (``bilinear``, ``lanczos3``,
   ``lanczos5``); same seed, so the same targets and starting noise. Each makes ``--num``
   images with ``tools/generate_synthetic.py``; the figures are its **fidelity** (the teacher's
   mAP and mAP50 on its own images against their targets) and images per second.
2. **Test-time upscaling of small images** (``upscaling``): the real demo val images shrunk to
   half their size (area averaging, as a camera of half the resolution would see them; boxes
   halved) are brought back to the network input (128 px) by mmdet's ``Resize`` (bilinear) or
   by ``LanczosResize`` of order 3 and 5. The demo teacher and the data-free student of
   ``make demo`` are evaluated on them (bbox mAP, pycocotools), next to their mAP on the
   original val images with the config's own pipeline.

Finished entries are kept in ``benchmarks/results/lanczos.json`` and skipped when the command
is run again with the same settings (``--force`` reruns them); writes ``lanczos.json`` and
``lanczos.md`` under ``benchmarks/results/``. Needs ``make demo`` (data, teacher, student).
"""
import argparse
import json
import os
import os.path as osp
import shutil
import sys
import time
from typing import Any, Dict

import cv2

import mmdfkd  # noqa: F401  (registers modules, allows mmengine checkpoints)

# The demo machinery is not part of the installed package: it is tools/demo/ of this checkout.
sys.path.insert(0, osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'tools'))
from demo.experiment import (REPO_ROOT, evaluate, experiment_config,  # noqa: E402
                             file_fingerprint, synthesize_bank)

DEMO = osp.join(REPO_ROOT, 'configs', 'demo')
INVERSION_CONFIG = osp.join(DEMO, 'dfkd_deit_tiny_shapes.py')
TEACHER_CONFIG = osp.join(DEMO, 'retinanet_r18_shapes.py')
UPSAMPLE_MODES = ('bilinear', 'lanczos3', 'lanczos5')
# Test-time resize of the upscaling part: name -> the Resize entry of the test pipeline
# (None keeps the config's, mmdet's bilinear Resize).
RESIZES = {'bilinear': None,
           'lanczos3': dict(type='LanczosResize', order=3),
           'lanczos5': dict(type='LanczosResize', order=5)}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--parts', nargs='+', choices=('inversion', 'upscaling'),
                        default=['inversion', 'upscaling'])
    parser.add_argument('--num', type=int, default=64, help='images inverted per mode')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--data-root', default='data/demo')
    parser.add_argument('--teacher-checkpoint', default='work_dirs/demo/teacher/iter_1500.pth')
    parser.add_argument('--student-config',
                        default=osp.join(DEMO, 'dfkd_images_mosaic_deit_tiny_shapes.py'))
    parser.add_argument('--student-checkpoint', default='work_dirs/demo/student/iter_800.pth')
    parser.add_argument('--work-dir', default='work_dirs/benchmarks/lanczos')
    parser.add_argument('--out-dir', default=osp.join(REPO_ROOT, 'benchmarks', 'results'))
    parser.add_argument('--force', action='store_true', help='rerun finished entries')
    return parser.parse_args()


def shrink_split(data_root: str, out_root: str, factor: int = 2) -> str:
    """Writes the val split of ``data_root`` (COCO layout) shrunk by ``factor`` to ``out_root``:
    images by area averaging, boxes, sizes and areas scaled with them.

    Returns:
        ``out_root``.
    """
    with open(osp.join(data_root, 'annotations', 'instances_val.json')) as f:
        coco = json.load(f)
    os.makedirs(osp.join(out_root, 'annotations'), exist_ok=True)
    os.makedirs(osp.join(out_root, 'val'), exist_ok=True)
    for image in coco['images']:
        pixels = cv2.imread(osp.join(data_root, 'val', image['file_name']))
        width, height = image['width'] // factor, image['height'] // factor
        cv2.imwrite(osp.join(out_root, 'val', image['file_name']),
                    cv2.resize(pixels, (width, height), interpolation=cv2.INTER_AREA))
        image.update(width=width, height=height)
    for annotation in coco['annotations']:
        annotation['bbox'] = [v / factor for v in annotation['bbox']]
        annotation['area'] = annotation['area'] / factor**2
    with open(osp.join(out_root, 'annotations', 'instances_val.json'), 'w') as f:
        json.dump(coco, f)
    return out_root


def with_test_resize(cfg, resize: Dict[str, Any]):
    """``cfg`` with the ``Resize`` of its test pipeline replaced by ``resize`` (its other
    arguments kept), in place."""
    pipeline = cfg.test_dataloader.dataset.pipeline
    (index, ) = [i for i, step in enumerate(pipeline) if step['type'] == 'Resize']
    pipeline[index] = dict(pipeline[index], **resize)
    return cfg


def inversion_entry(mode: str, args: argparse.Namespace) -> Dict[str, Any]:
    """Inverts ``args.num`` images with ``mode`` upsampling; their fidelity and speed."""
    out = osp.join(args.work_dir, f'bank_{mode}')
    shutil.rmtree(out, ignore_errors=True)
    summary = synthesize_bank(INVERSION_CONFIG, out, args.num, args.teacher_checkpoint,
                              seed=args.seed,
                              extra_options=[f'custom_hooks.0.synthesizer.upsample={mode}'])
    return dict(fidelity_mAP=summary['fidelity']['bbox_mAP'],
                fidelity_mAP_50=summary['fidelity']['bbox_mAP_50'],
                images_per_second=summary['images_per_second'], bank=out)


def upscaling_entries(args: argparse.Namespace) -> Dict[str, Any]:
    """The teacher's and the student's mAP on the half-size val images per test-time resize,
    and on the original ones."""
    small = shrink_split(args.data_root, osp.join(args.work_dir, 'val_half'))
    models = {'teacher': (TEACHER_CONFIG, args.teacher_checkpoint),
              'student': (args.student_config, args.student_checkpoint)}
    entries: Dict[str, Any] = {}
    for model, (config, checkpoint) in models.items():
        work_dir = osp.join(args.work_dir, model)
        cfg = experiment_config(config, work_dir, args.data_root, args.seed)
        entries[f'{model}/original'] = evaluate(cfg, checkpoint)
        for name, resize in RESIZES.items():
            cfg = experiment_config(config, work_dir, small, args.seed)
            if resize is not None:
                with_test_resize(cfg, resize)
            entries[f'{model}/half_size_{name}'] = evaluate(cfg, checkpoint)
    return entries


def report(results: Dict[str, Any]) -> str:
    """The markdown of ``lanczos.md``."""
    lines = [f"# Lanczos against bilinear resizing ({results['date']}, {results['machine']})",
             '', f"Settings: {json.dumps(results['settings'])}", '']
    inversion = results.get('inversion', {})
    if inversion:
        lines += ['## Inversion: upsampling from the low-resolution phase', '',
                  '| upsample | fidelity mAP | fidelity mAP50 | images / s |', '|---|---|---|---|']
        lines += [f"| {mode} | {e['fidelity_mAP']:.3f} | {e['fidelity_mAP_50']:.3f} | "
                  f"{e['images_per_second']:.3f} |" for mode, e in inversion.items()]
        lines.append('')
    upscaling = results.get('upscaling', {})
    if upscaling:
        lines += ['## Test-time upscaling of half-size val images to the input size', '',
                  '| model | original val | ' + ' | '.join(f'half size, {n}' for n in RESIZES)
                  + ' |', '|---|---|' + '---|' * len(RESIZES)]
        for model in ('teacher', 'student'):
            keys = ['original'] + [f'half_size_{n}' for n in RESIZES]
            lines.append(f'| {model} | ' + ' | '.join(
                f"{upscaling[f'{model}/{k}']['bbox_mAP']:.3f} "
                f"({upscaling[f'{model}/{k}']['bbox_mAP_50']:.3f})" for k in keys) + ' |')
        lines += ['', 'Cells: bbox mAP (mAP50) on the demo val split.']
    return '\n'.join(lines) + '\n'


def main() -> None:
    args = parse_args()
    path = osp.join(args.out_dir, 'lanczos.json')
    settings = dict(num=args.num, seed=args.seed, data_root=args.data_root,
                    teacher_sha=file_fingerprint(args.teacher_checkpoint),
                    student_sha=file_fingerprint(args.student_checkpoint))
    results: Dict[str, Any] = dict(settings=settings)
    if osp.isfile(path) and not args.force:
        with open(path) as f:
            previous = json.load(f)
        if previous.get('settings') == settings:
            results = previous
    results.update(date=time.strftime('%Y-%m-%d'), machine=f'{os.cpu_count()} CPU cores')
    if 'inversion' in args.parts:
        inversion = results.setdefault('inversion', {})
        for mode in UPSAMPLE_MODES:
            if mode not in inversion:
                inversion[mode] = inversion_entry(mode, args)
                write(results, args.out_dir)
    if 'upscaling' in args.parts and 'upscaling' not in results:
        results['upscaling'] = upscaling_entries(args)
    write(results, args.out_dir)


def write(results: Dict[str, Any], out_dir: str) -> None:
    """Writes ``lanczos.json`` and ``lanczos.md`` under ``out_dir``."""
    os.makedirs(out_dir, exist_ok=True)
    with open(osp.join(out_dir, 'lanczos.json'), 'w') as f:
        json.dump(results, f, indent=2)
    table = report(results)
    with open(osp.join(out_dir, 'lanczos.md'), 'w') as f:
        f.write(table)
    print(table)


if __name__ == '__main__':
    main()
