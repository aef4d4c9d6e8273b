"""Synthesize a stored set of images from a data-free config's teachers, and measure fidelity.

``python tools/generate_synthetic.py CONFIG --num N --out DIR`` builds the synthesizer of
``CONFIG``'s ``ImageSynthesisHook`` (the same object training uses, from the same settings),
makes images for the targets of its ``SyntheticDetDataset`` items 0 to N-1 and writes the
following. A synthesizer with a network of its own (``GeneratorSynthesizer``) is first trained
for ``--generator-iters`` steps on the targets of the items after those, then draws the images.

- ``DIR/images/*.png``: the synthetic images;
- ``DIR/targets.json``: their targets in COCO ground-truth format (``images``, ``annotations``,
  ``categories``), false-positive-sampled boxes included;
- ``DIR/teacher_predictions.json``: the first teacher's detections on the saved images, in COCO
  results format;
- with ``--store-outputs``, ``DIR/teacher_outputs/NNNNNNN.pt``: per image, each teacher's outputs
  for the sources the config's distillation terms read and its detections, in the format of
  :mod:`mmdfkd.structures.teacher_outputs`. ``SyntheticBankDataset`` trains from this bank
  without running the teacher;
- ``DIR/summary.json``: fidelity (the teacher's COCO mAP on its own synthetic images against
  the targets, with pycocotools), the BN-statistics loss at the first and last step, and images
  per second.

The output is written to a temporary folder renamed to ``DIR`` when complete; an existing
``DIR`` is never overwritten.
"""
import argparse
import json
import os
import os.path as osp
import shutil
import sys
import time
from typing import Dict, List

import cv2
import numpy as np
import torch
from mmdet.registry import DATASETS, MODELS
from mmdet.utils import register_all_modules
from mmengine.config import DictAction
from mmengine.utils import ProgressBar

import mmdfkd  # noqa: F401
from mmdfkd.models.synthesis import Synthesizer, Targets, build_synthesizer
from mmdfkd.models.utils import predict_images
from mmdfkd.structures import OUTPUTS_DIR, make_entries, save_entry
from mmdfkd.utils import ConfigOptionError, prepare_config
from mmdfkd.utils.paths import check_teacher_checkpoints


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Synthesize images from a config\'s teachers')
    parser.add_argument('config', help='a data-free config (DetectionDistiller model, '
                        'SyntheticDetDataset train data, ImageSynthesisHook)')
    parser.add_argument('--num', type=int, required=True, help='number of images')
    parser.add_argument('--out', required=True, help='output directory (must not exist)')
    parser.add_argument('--batch-size', type=int, default=None,
                        help='images made together (default: the train batch size)')
    parser.add_argument('--seed', type=int, default=0, help='synthesis seed')
    parser.add_argument('--generator-iters', type=int, default=200,
                        help='a synthesizer with a generator network: its training steps '
                        'before the images are drawn')
    parser.add_argument('--store-outputs', action='store_true',
                        help='also store the teachers\' outputs the distillation terms read '
                        '(fp16), so training from the bank need not run the teachers')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value pairs')
    return parser.parse_args()


def _hook_cfg(cfg) -> dict:
    for hook in cfg.get('custom_hooks', []):
        if hook.get('type') == 'ImageSynthesisHook':
            return hook
    raise ValueError('The config has no ImageSynthesisHook in custom_hooks; '
                     'generate_synthetic.py builds its synthesizer from there.')


def _targets(synthesizer: Synthesizer, dataset, first: int, num: int) -> Targets:
    """The targets of dataset items ``first`` to ``first + num - 1``."""
    return synthesizer.targets_of([dataset[i]['data_samples'] for i in range(first, first + num)])


def _train_network(synthesizer: Synthesizer, dataset, iters: int, batch_size: int,
                   first_index: int, rng: torch.Generator):
    """Trains the synthesizer's network for ``iters`` updates on batches of sampled targets
    (dataset items from ``first_index`` on, apart from the measured ones); returns the BN loss
    of the first and last update."""
    bn = []
    progress = ProgressBar(iters)
    for step in range(iters):
        targets = _targets(synthesizer, dataset, first_index + step * batch_size, batch_size)
        log = synthesizer.update(targets, rng)
        bn.append(log.get('syn_bn_t0', float('nan')))
        progress.update()
    return bn[0], bn[-1]


def _store_outputs(distiller, images: torch.Tensor, metainfo: List[dict],
                   first_detections: list, out_dir: str) -> None:
    """Writes each image's entry of teacher outputs (recorded sources and detections)."""
    per_teacher = []
    for index, teacher in enumerate(distiller.teachers):
        detections = first_detections if index == 0 else predict_images(teacher, images,
                                                                         metainfo)
        per_teacher.append((distiller.teacher_sources(index, images), detections))
    for entry, meta in zip(make_entries(per_teacher), metainfo):
        save_entry(entry, out_dir, meta['img_id'])


def _coco_eval(targets: dict, predictions: List[dict]) -> Dict[str, float]:
    """bbox mAP and mAP50 of ``predictions`` against ``targets`` with pycocotools."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    if not predictions:
        return dict(bbox_mAP=0.0, bbox_mAP_50=0.0)
    gt = COCO()
    gt.dataset = targets
    gt.createIndex()
    dt = gt.loadRes(predictions)
    evaluator = COCOeval(gt, dt, 'bbox')
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    return dict(bbox_mAP=float(evaluator.stats[0]), bbox_mAP_50=float(evaluator.stats[1]))


def main() -> None:
    args = parse_args()
    if osp.exists(args.out):
        sys.exit(f'{args.out} exists; choose a new --out (nothing was written).')
    if args.num < 1:
        sys.exit('--num must be at least 1.')
    register_all_modules()
    try:
        cfg = prepare_config(args.config, cfg_options=args.cfg_options)
    except ConfigOptionError as exc:
        sys.exit(str(exc))
    problems = check_teacher_checkpoints(cfg)
    if problems:  # a missing teacher checkpoint: say so before building anything
        sys.exit('\n'.join(problems))
    hook = _hook_cfg(cfg)
    distiller = MODELS.build(cfg.model).to(args.device)
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    classes = dataset.metainfo['classes']
    batch_size = args.batch_size or cfg.train_dataloader.batch_size
    synthesizer = build_synthesizer(hook.synthesizer, distiller, dataset)
    rng = torch.Generator().manual_seed(args.seed)
    teacher = distiller.teachers[0]

    tmp_out = args.out.rstrip('/') + '.partial'
    shutil.rmtree(tmp_out, ignore_errors=True)
    os.makedirs(osp.join(tmp_out, 'images'))
    outputs_dir = osp.join(tmp_out, OUTPUTS_DIR)
    if args.store_outputs:
        os.makedirs(outputs_dir)
    targets_json = dict(images=[], annotations=[],
                        categories=[dict(id=i + 1, name=name) for i, name in enumerate(classes)])
    predictions: List[dict] = []
    bn_first, bn_last = [], []
    start_time = time.time()
    if synthesizer.has_parameters:
        bn_start, bn_end = _train_network(synthesizer, dataset, args.generator_iters,
                                          batch_size, args.num, rng)
        bn_first.append(bn_start)
        bn_last.append(bn_end)
    progress = ProgressBar(args.num)
    for first in range(0, args.num, batch_size):
        batch = synthesizer.synthesize(
            _targets(synthesizer, dataset, first, min(batch_size, args.num - first)), rng)
        if batch.first_log:
            bn_first.append(batch.first_log.get('syn_bn_t0', float('nan')))
            bn_last.append(batch.log.get('syn_bn_t0', float('nan')))
        meta = batch.targets.metainfo
        images = torch.stack(batch.images).float().to(args.device)
        detections = predict_images(teacher, images, meta)
        if args.store_outputs:
            _store_outputs(distiller, images, meta, detections, outputs_dir)
        height, width = batch.targets.img_hw
        for image, m, box, label, dets in zip(batch.images, meta, batch.targets.boxes,
                                              batch.targets.labels, detections):
            image_id = int(m['img_id'])
            name = f'{image_id:07d}.png'
            cv2.imwrite(osp.join(tmp_out, 'images', name),
                        np.ascontiguousarray(image.permute(1, 2, 0).numpy()))
            targets_json['images'].append(dict(id=image_id, file_name=name, height=height,
                                               width=width))
            for b, lb in zip(box.tolist(), label.tolist()):
                targets_json['annotations'].append(dict(
                    id=len(targets_json['annotations']) + 1, image_id=image_id,
                    category_id=lb + 1, bbox=[b[0], b[1], b[2] - b[0], b[3] - b[1]],
                    area=(b[2] - b[0]) * (b[3] - b[1]), iscrowd=0))
            for b, score, lb in zip(dets.bboxes.tolist(), dets.scores.tolist(),
                                    dets.labels.tolist()):
                predictions.append(dict(image_id=image_id, category_id=lb + 1, score=score,
                                        bbox=[b[0], b[1], b[2] - b[0], b[3] - b[1]]))
            progress.update()
    elapsed = time.time() - start_time
    fidelity = _coco_eval(targets_json, predictions)
    summary = dict(config=args.config, num_images=args.num,
                   fidelity=fidelity, bn_loss_first_step=float(np.nanmean(bn_first)),
                   bn_loss_last_step=float(np.nanmean(bn_last)),
                   images_per_second=args.num / elapsed, seconds=elapsed,
                   synthesizer=hook.synthesizer.to_dict(), device=args.device,
                   stored_outputs=args.store_outputs)
    for name, data in (('targets.json', targets_json), ('teacher_predictions.json', predictions),
                       ('summary.json', summary)):
        with open(osp.join(tmp_out, name), 'w') as f:
            json.dump(data, f)
    os.replace(tmp_out, args.out)
    print(f'\n{json.dumps(dict(fidelity=fidelity, bn_loss_first_step=summary["bn_loss_first_step"], bn_loss_last_step=summary["bn_loss_last_step"], images_per_second=round(summary["images_per_second"], 3)))}')


if __name__ == '__main__':
    main()
