"""Synthesize a stored set of images from a data-free config's teachers, and measure fidelity.

``python tools/generate_synthetic.py CONFIG --num N --out DIR`` inverts the teachers of
``CONFIG`` (its ``SyntheticImageGeneratorHook`` settings, its ``SyntheticDetDataset`` targets)
and writes the following. In generator mode the hook's generator network is first trained for
``--generator-iters`` steps on other sampled targets, then draws the images.

- ``DIR/images/*.png``: the synthetic images;
- ``DIR/targets.json``: their targets in COCO ground-truth format (``images``, ``annotations``,
  ``categories``), false-positive-sampled boxes included;
- ``DIR/teacher_predictions.json``: the first teacher's detections on the saved images, in COCO
  results format;
- with ``--store-outputs``, ``DIR/teacher_outputs/NNNNNNN.pt``: per image, each teacher's outputs
  for the sources the config's distillation terms read (e.g. neck levels, head logits) in
  fp16, and its detections. ``SyntheticBankDataset`` trains from this bank without running the
  teacher;
- ``DIR/summary.json``: inversion fidelity (the teacher's COCO mAP on its own synthetic images
  against the targets, with pycocotools), the BN-statistics loss at the first and last step,
  and images per second.

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
from mmdet.structures import DetDataSample
from mmdet.utils import register_all_modules
from mmengine.config import DictAction
from mmengine.utils import ProgressBar

import mmdfkd  # noqa: F401
from mmdfkd.models.distillers.normalization import normalize_like
from mmdfkd.models.synthesis import DetectorInverter
from mmdfkd.models.synthesis.generator_training import (DEFAULT_GENERATOR_OPTIM_WRAPPER,
                                                       build_generator, generate_images,
                                                       generator_step)
from mmdfkd.utils import prepare_config
from mmdfkd.utils.paths import check_teacher_checkpoints


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Synthesize images from a config\'s teachers')
    parser.add_argument('config', help='a data-free config (DetectionDistiller model, '
                        'SyntheticDetDataset train data, SyntheticImageGeneratorHook)')
    parser.add_argument('--num', type=int, required=True, help='number of images')
    parser.add_argument('--out', required=True, help='output directory (must not exist)')
    parser.add_argument('--batch-size', type=int, default=None,
                        help='images refined together (default: the train batch size)')
    parser.add_argument('--seed', type=int, default=0, help='synthesis seed')
    parser.add_argument('--generator-iters', type=int, default=200,
                        help='generator mode: training steps of the generator network before '
                        'the images are drawn')
    parser.add_argument('--store-outputs', action='store_true',
                        help='also store the teachers\' outputs the distillation terms read '
                        '(fp16), so training from the bank need not run the teachers')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value pairs')
    return parser.parse_args()


def _hook_cfg(cfg) -> dict:
    for hook in cfg.get('custom_hooks', []):
        if hook.get('type') == 'SyntheticImageGeneratorHook':
            return hook
    raise ValueError('The config has no SyntheticImageGeneratorHook in custom_hooks; '
                     'generate_synthetic.py reads its synthesis settings from there.')


def _train_generator(hook: dict, inverter: DetectorInverter, dataset, device, iters: int,
                     batch_size: int, first_index: int, rng: torch.Generator):
    """Trains the hook's generator network for ``iters`` steps on batches of sampled targets
    (dataset items from ``first_index`` on, apart from the measured ones); returns it and the
    BN loss of the first and last step."""
    network, optim_wrapper = build_generator(
        dict(dict(type='BoxConditionedGenerator'), **hook.get('generator', {})),
        hook.get('generator_optim_wrapper') or DEFAULT_GENERATOR_OPTIM_WRAPPER, dataset, device)
    network.train()
    bn = []
    progress = ProgressBar(iters)
    for step in range(iters):
        start = first_index + step * batch_size
        samples = [dataset[i]['data_samples'] for i in range(start, start + batch_size)]
        boxes = [s.gt_instances.bboxes.tensor.float().to(device) for s in samples]
        labels = [s.gt_instances.labels.to(device) for s in samples]
        meta = [dict(s.metainfo) for s in samples]
        log = generator_step(network, optim_wrapper, inverter, boxes, labels, meta,
                             tuple(meta[0]['img_shape'][:2]), rng)
        bn.append(log.get('syn_bn_t0', float('nan')))
        progress.update()
    return network, bn[0], bn[-1]


def _slice(structure, index: int):
    """Sample ``index`` of a batched output (tensors nested in lists/tuples), fp16, batch 1."""
    if isinstance(structure, torch.Tensor):
        return structure[index:index + 1].detach().half().cpu().clone()
    return type(structure)(_slice(part, index) for part in structure)


def _store_outputs(distiller, images: torch.Tensor, meta: List[dict], first_results: list,
                   out_dir: str) -> None:
    """Writes ``out_dir/NNNNNNN.pt`` per image: each teacher's recorded sources and
    detections."""
    per_teacher = []
    for index, teacher in enumerate(distiller.teachers):
        sources = distiller.teacher_sources(index, images)
        if index == 0:
            results = first_results
        else:
            inputs = normalize_like(images, teacher.data_preprocessor)
            query = [DetDataSample(metainfo=dict(m, batch_input_shape=tuple(inputs.shape[-2:])))
                     for m in meta]
            with torch.no_grad():
                results = teacher.predict(inputs, query, rescale=False)
        per_teacher.append((sources, results))
    for i, m in enumerate(meta):
        entry = {}
        for index, (sources, results) in enumerate(per_teacher):
            dets = results[i].pred_instances
            entry[f'teacher{index}'] = dict(
                sources={spec: _slice(value, i) for spec, value in sources.items()},
                detections=dict(bboxes=dets.bboxes.cpu(), scores=dets.scores.cpu(),
                                labels=dets.labels.cpu()))
        torch.save(entry, osp.join(out_dir, f'{int(m["img_id"]):07d}.pt'))


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
    cfg = prepare_config(args.config, cfg_options=args.cfg_options)
    problems = check_teacher_checkpoints(cfg)
    if problems:  # a missing teacher checkpoint: say so before building anything
        sys.exit('\n'.join(problems))
    hook = _hook_cfg(cfg)
    mode = hook.get('mode', 'inversion')
    inversion = dict(hook.inversion)
    if mode == 'generator':
        inversion.setdefault('total_steps', 1)
    distiller = MODELS.build(cfg.model).to(args.device)
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    classes = dataset.metainfo['classes']
    batch_size = args.batch_size or cfg.train_dataloader.batch_size
    inverter = DetectorInverter.from_distiller(distiller, **inversion)
    generator = torch.Generator().manual_seed(args.seed)
    teacher = distiller.teachers[0]

    tmp_out = args.out.rstrip('/') + '.partial'
    shutil.rmtree(tmp_out, ignore_errors=True)
    os.makedirs(osp.join(tmp_out, 'images'))
    if args.store_outputs:
        os.makedirs(osp.join(tmp_out, 'teacher_outputs'))
    targets = dict(images=[], annotations=[],
                   categories=[dict(id=i + 1, name=name) for i, name in enumerate(classes)])
    predictions: List[dict] = []
    bn_first, bn_last = [], []
    start_time = time.time()
    if mode == 'generator':
        network, bn_start, bn_end = _train_generator(
            hook, inverter, dataset, args.device, args.generator_iters, batch_size, args.num,
            generator)
        bn_first.append(bn_start)
        bn_last.append(bn_end)
        network.eval()
    progress = ProgressBar(args.num)
    for first in range(0, args.num, batch_size):
        items = [dataset[i] for i in range(first, min(first + batch_size, args.num))]
        samples = [item['data_samples'] for item in items]
        boxes = [s.gt_instances.bboxes.tensor.float() for s in samples]
        labels = [s.gt_instances.labels for s in samples]
        meta = [dict(s.metainfo) for s in samples]
        shape = tuple(meta[0]['img_shape'][:2])
        if mode == 'generator':
            boxes = [b.to(args.device) for b in boxes]
            labels = [lb.to(args.device) for lb in labels]
            images = generate_images(network, boxes, labels, generator)
        else:
            cohort = inverter.start(boxes, labels, meta, shape, generator)
            log = inverter.refine(cohort, 1, generator)
            bn_first.append(log.get('syn_bn_t0', float('nan')))
            inverter.refine(cohort, inverter.total_steps - 2, generator)
            log = inverter.refine(cohort, 1, generator)
            bn_last.append(log.get('syn_bn_t0', float('nan')))
            images = inverter.images(cohort)
            boxes, labels = cohort.boxes, cohort.labels  # with false-positive samples
        with torch.no_grad():
            inputs = normalize_like(images, teacher.data_preprocessor)
            query = [DetDataSample(metainfo=dict(m, batch_input_shape=tuple(inputs.shape[-2:])))
                     for m in meta]
            results = teacher.predict(inputs, query, rescale=False)
        if args.store_outputs:
            _store_outputs(distiller, images, meta, results,
                           osp.join(tmp_out, 'teacher_outputs'))
        for image, m, box, label, result in zip(images, meta, boxes, labels, results):
            image_id = int(m['img_id'])
            name = f'{image_id:07d}.png'
            cv2.imwrite(osp.join(tmp_out, 'images', name),
                        image.permute(1, 2, 0).cpu().numpy().astype(np.uint8))
            targets['images'].append(dict(id=image_id, file_name=name, height=shape[0],
                                          width=shape[1]))
            for b, lb in zip(box.tolist(), label.tolist()):
                targets['annotations'].append(dict(
                    id=len(targets['annotations']) + 1, image_id=image_id,
                    category_id=lb + 1, bbox=[b[0], b[1], b[2] - b[0], b[3] - b[1]],
                    area=(b[2] - b[0]) * (b[3] - b[1]), iscrowd=0))
            dets = result.pred_instances
            for b, score, lb in zip(dets.bboxes.tolist(), dets.scores.tolist(),
                                    dets.labels.tolist()):
                predictions.append(dict(image_id=image_id, category_id=lb + 1, score=score,
                                        bbox=[b[0], b[1], b[2] - b[0], b[3] - b[1]]))
            progress.update()
    elapsed = time.time() - start_time
    fidelity = _coco_eval(targets, predictions)
    summary = dict(config=args.config, num_images=args.num,
                   fidelity=fidelity, bn_loss_first_step=float(np.nanmean(bn_first)),
                   bn_loss_last_step=float(np.nanmean(bn_last)),
                   images_per_second=args.num / elapsed, seconds=elapsed,
                   mode=mode, inversion=inversion, device=args.device,
                   stored_outputs=args.store_outputs)
    for name, data in (('targets.json', targets), ('teacher_predictions.json', predictions),
                       ('summary.json', summary)):
        with open(osp.join(tmp_out, name), 'w') as f:
            json.dump(data, f)
    os.replace(tmp_out, args.out)
    print(f'\n{json.dumps(dict(fidelity=fidelity, bn_loss_first_step=summary["bn_loss_first_step"], bn_loss_last_step=summary["bn_loss_last_step"], images_per_second=round(summary["images_per_second"], 3)))}')


if __name__ == '__main__':
    main()
