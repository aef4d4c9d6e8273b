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
  the targets, with pycocotools), the BN-statistics loss at the first and last step,
  ``images_per_second`` (the images all processes of this run made over its wall time; a
  resumed run counts only its own, ``images_made``) and the cost of synthesis,
  ``teacher_forward_per_image`` and ``teacher_backward_per_image``: the teachers' passes per
  image, summed over teachers, generator training included (``PassCounter``).

Images are made in batches of ``--batch-size`` consecutive items (``0..B-1``, ``B..2B-1``, ...).
Each batch's random stream is seeded from ``(--seed, its first item)``, so an image depends on
neither the number of processes nor on resuming (bit for bit on the CPU; on GPUs, up to their
nondeterministic kernels), and a killed run may be resumed with another number of processes.

Several processes (``tools/dist_generate_synthetic.sh CONFIG GPUS ...``, torchrun): each
process makes its share of the batches and writes their files itself (gloo on the CPU, nccl on
``cuda:LOCAL_RANK``); the first merges the targets, predictions and summary once all are done.
A generator network is trained by the first process only and saved in the partial run; the
others wait, then load it, so every process draws with the same network.

The output is written to ``DIR.partial`` and renamed to ``DIR`` when complete; an existing
``DIR`` is never overwritten. ``DIR.partial/.resume`` holds the run's settings
(``manifest.json``), one record per finished batch (written after the batch's files, each file
replaced atomically, so a killed run never counts a half-written image) and a trained
generator network. Running the same command again after a kill makes only the batches without
a record (a generator network is loaded, not trained again); with other settings it stops and
says which, touching nothing.
"""
import argparse
import datetime
import hashlib
import io
import json
import os
import os.path as osp
import shutil
import sys
import time
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np
import torch
import torch.distributed as dist
from mmdet.registry import DATASETS, MODELS
from mmdet.utils import register_all_modules
from mmengine.config import DictAction
from mmengine.runner import set_random_seed
from mmengine.utils import ProgressBar

import mmdfkd  # noqa: F401
from mmdfkd.models.synthesis import Synthesizer, Targets, build_synthesizer
from mmdfkd.models.utils import PassCounter, predict_images
from mmdfkd.structures import OUTPUTS_DIR, entry_path, make_entries
from mmdfkd.utils import (AtomicLocalBackend, ConfigOptionError, file_sha256,
                          finish_distributed, load_checkpoint_file, prepare_config)
from mmdfkd.utils.paths import check_teacher_checkpoints

# Bookkeeping of a run in progress, inside DIR.partial; removed once the bank is complete.
RESUME_DIR = '.resume'
MANIFEST = 'manifest.json'
BATCHES_DIR = 'batches'
NETWORK_STATE = 'synthesizer_network.pth'
# What a run's images depend on besides its options (the manifest holds their fingerprints),
# as the refusal to resume names them.
CONFIG_PARTS = {'model': "the config's model", 'dataset': "the config's train dataset",
                'synthesizer': "the config's synthesizer",
                'teacher_checkpoints': "a teacher checkpoint's content"}
# Processes wait for each other while the first trains a generator network and while the
# slowest finishes its batches. torchrun stops every process when one fails, so a long limit
# never hides a failure.
DIST_TIMEOUT = datetime.timedelta(hours=12)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Synthesize images from a config\'s teachers')
    parser.add_argument('config', help='a data-free config (DetectionDistiller model, '
                        'SyntheticDetDataset train data, ImageSynthesisHook)')
    parser.add_argument('--num', type=int, required=True, help='number of images')
    parser.add_argument('--out', required=True,
                        help='output directory (must not exist); DIR.partial, the run in '
                        'progress, is resumed by the same command')
    parser.add_argument('--batch-size', type=int, default=None,
                        help='images made together (default: the train batch size)')
    parser.add_argument('--seed', type=int, default=0, help='synthesis seed')
    parser.add_argument('--generator-iters', type=int, default=200,
                        help='a synthesizer with a generator network: its training steps '
                        'before the images are drawn')
    parser.add_argument('--store-outputs', action='store_true',
                        help='also store the teachers\' outputs the distillation terms read '
                        '(fp16), so training from the bank need not run the teachers')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu',
                        help='device; under torchrun, cuda means cuda:LOCAL_RANK')
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


def _batch_rng(seed: int, first: int) -> torch.Generator:
    """The random stream of the batch starting at item ``first``: the same in every run."""
    state = np.random.SeedSequence([seed, first]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


# ---------------------------------------------------------------------------- the partial run
def _fingerprint(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _manifest(args: argparse.Namespace, cfg, hook: dict, batch_size: int) -> dict:
    """What determines the images of a run: a resumed run must have the same (the teachers'
    checkpoints by content: a teacher trained again at the same path makes other images)."""
    return dict(model=_fingerprint(cfg.model.to_dict()),
                teacher_checkpoints=[file_sha256(t.checkpoint)
                                     for t in cfg.model.teachers],
                dataset=_fingerprint(cfg.train_dataloader.dataset.to_dict()),
                synthesizer=_fingerprint(hook.synthesizer.to_dict()), num=args.num,
                batch_size=batch_size, seed=args.seed, generator_iters=args.generator_iters,
                store_outputs=args.store_outputs)


def _start_partial(partial: str, manifest: dict, command: List[str]) -> None:
    """Writes the manifest of a new run. A folder that holds files but no manifest is left as
    it is (the check that follows refuses it); one with only the temporary file of a write
    that was cut short (``*.tmp``) is new."""
    path = osp.join(partial, RESUME_DIR, MANIFEST)
    if osp.exists(path) or any(not name.endswith('.tmp') for _, _, files in os.walk(partial)
                               for name in files):
        return
    AtomicLocalBackend().put_text(json.dumps(dict(manifest, command=command)), path)


def _partial_problem(partial: str, manifest: dict) -> Optional[str]:
    """Why ``partial`` cannot be continued with these settings, or None."""
    path = osp.join(partial, RESUME_DIR, MANIFEST)
    if not osp.exists(path):
        return (f'{partial} exists but holds no {RESUME_DIR}/{MANIFEST}, so it is not a run '
                'this tool can resume (an older version of it does not write one). Move or '
                'remove it, or choose another --out.')
    with open(path) as f:
        saved = json.load(f)
    differences = [f'{CONFIG_PARTS[key]} differs' if key in CONFIG_PARTS else
                   f'{key} {saved.get(key)!r} there, {value!r} now'
                   for key, value in manifest.items() if saved.get(key) != value]
    if not differences:
        return None
    done = len(os.listdir(osp.join(partial, RESUME_DIR, BATCHES_DIR))) \
        if osp.isdir(osp.join(partial, RESUME_DIR, BATCHES_DIR)) else 0
    return (f'{partial} is a run with other settings ({"; ".join(differences)}), with '
            f'{done} finished batch(es); nothing was changed. Finish it with the arguments that '
            f'started it ({" ".join(saved.get("command", []))}), or move or remove {partial} '
            'to start again with these settings.')


def _record_path(partial: str, first: int) -> str:
    return osp.join(partial, RESUME_DIR, BATCHES_DIR, f'{first:07d}.json')


# ------------------------------------------------------------------------------- distributed
def _init_distributed(device: str) -> Tuple[int, int, str]:
    """Joins torchrun's process group when there is one; returns rank, world size, device."""
    world_size = int(os.environ.get('WORLD_SIZE', 1))
    if world_size == 1:
        return 0, 1, device
    if device.startswith('cuda'):
        device = f'cuda:{int(os.environ["LOCAL_RANK"])}'
        torch.cuda.set_device(device)
    dist.init_process_group('nccl' if device.startswith('cuda') else 'gloo',
                            timeout=DIST_TIMEOUT)
    return dist.get_rank(), world_size, device


def _barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


# -------------------------------------------------------------------------------- synthesis
def _train_network(synthesizer: Synthesizer, dataset, iters: int, batch_size: int,
                   first_index: int, rng: torch.Generator) -> Tuple[float, float]:
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


def _prepare_network(synthesizer: Synthesizer, dataset, args: argparse.Namespace,
                     batch_size: int, partial: str, rank: int, device: str) -> dict:
    """Trains the synthesizer's network on the first process and saves it in the partial run
    (unless an earlier run did); every process then loads that state, so all draw with the
    same network, and a resumed run does not train again.

    Returns:
        ``bn_first``, ``bn_last`` (BN loss of the first and last update) and the teachers'
        ``forward``/``backward`` passes of the training.
    """
    path = osp.join(partial, RESUME_DIR, NETWORK_STATE)
    if rank == 0:
        if osp.exists(path):
            print(f'Loading the generator network trained by the earlier run ({path}).')
        else:
            with PassCounter([t.backbone for t in synthesizer.teachers]) as passes:
                bn_first, bn_last = _train_network(synthesizer, dataset, args.generator_iters,
                                                   batch_size, args.num,
                                                   torch.Generator().manual_seed(args.seed))
            buffer = io.BytesIO()
            torch.save(dict(synthesizer=synthesizer.state_dict(), bn_first=bn_first,
                            bn_last=bn_last, forward=passes.forward,
                            backward=passes.backward), buffer)
            AtomicLocalBackend().put(buffer.getvalue(), path)
    _barrier()
    saved = load_checkpoint_file(path, map_location=device)
    synthesizer.load_state_dict(saved.pop('synthesizer'))
    return saved


def _store_outputs(distiller, images: torch.Tensor, metainfo: List[dict],
                   first_detections: list, out_dir: str) -> None:
    """Writes each image's entry of teacher outputs (recorded sources and detections), each
    file replaced atomically."""
    per_teacher = []
    for index, teacher in enumerate(distiller.teachers):
        detections = first_detections if index == 0 else predict_images(teacher, images,
                                                                         metainfo)
        per_teacher.append((distiller.teacher_sources(index, images), detections))
    for entry, meta in zip(make_entries(per_teacher), metainfo):
        buffer = io.BytesIO()
        torch.save(entry, buffer)
        AtomicLocalBackend().put(buffer.getvalue(), entry_path(out_dir, meta['img_id']))


def _make_batch(synthesizer: Synthesizer, distiller, dataset, first: int, num: int,
                args: argparse.Namespace, partial: str, device: str) -> None:
    """Makes the batch of items ``first`` to ``first + num - 1`` and writes it: each image
    (and its stored outputs) replaced atomically, then the batch's record, which marks it
    finished."""
    backend = AtomicLocalBackend()
    with PassCounter([t.backbone for t in distiller.teachers]) as passes:
        batch = synthesizer.synthesize(_targets(synthesizer, dataset, first, num),
                                       _batch_rng(args.seed, first))
    meta = batch.targets.metainfo
    images = torch.stack(batch.images).float().to(device)
    detections = predict_images(distiller.teachers[0], images, meta)
    if args.store_outputs:
        _store_outputs(distiller, images, meta, detections, osp.join(partial, OUTPUTS_DIR))
    height, width = batch.targets.img_hw
    # The BN loss of the first and last synthesis step, if steps made the images.
    bn = [batch.first_log.get('syn_bn_t0', float('nan')),
          batch.log.get('syn_bn_t0', float('nan'))] if batch.first_log else None
    record = dict(images=[], annotations=[], predictions=[], bn=bn, forward=passes.forward,
                  backward=passes.backward)
    for image, m, box, label, dets in zip(batch.images, meta, batch.targets.boxes,
                                          batch.targets.labels, detections):
        image_id = int(m['img_id'])
        name = f'{image_id:07d}.png'
        png = cv2.imencode('.png', np.ascontiguousarray(image.permute(1, 2, 0).numpy()))[1]
        backend.put(png.tobytes(), osp.join(partial, 'images', name))
        record['images'].append(dict(id=image_id, file_name=name, height=height, width=width))
        for b, lb in zip(box.tolist(), label.tolist()):
            record['annotations'].append(dict(
                image_id=image_id, category_id=lb + 1, bbox=[b[0], b[1], b[2] - b[0], b[3] - b[1]],
                area=(b[2] - b[0]) * (b[3] - b[1]), iscrowd=0))
        for b, score, lb in zip(dets.bboxes.tolist(), dets.scores.tolist(),
                                dets.labels.tolist()):
            record['predictions'].append(dict(image_id=image_id, category_id=lb + 1,
                                              score=score,
                                              bbox=[b[0], b[1], b[2] - b[0], b[3] - b[1]]))
    backend.put_text(json.dumps(record), _record_path(partial, first))


def _coco_eval(targets: dict, predictions: List[dict]) -> Dict[str, Optional[float]]:
    """bbox mAP and mAP50 of ``predictions`` against ``targets`` with pycocotools; None for
    images made without targets (``ProceduralSynthesizer``), where fidelity does not apply."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    if not targets['annotations']:
        return dict(bbox_mAP=None, bbox_mAP_50=None)
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


def _merge(partial: str, firsts: List[int], classes, network: Optional[dict],
           num: int) -> Tuple[dict, list, dict]:
    """The targets (COCO), predictions and synthesis statistics of all batches, in item
    order, from their records."""
    targets = dict(images=[], annotations=[],
                   categories=[dict(id=i + 1, name=name) for i, name in enumerate(classes)])
    predictions: List[dict] = []
    bn_first, bn_last = [], []
    forward = backward = 0
    if network is not None:
        bn_first.append(network['bn_first'])
        bn_last.append(network['bn_last'])
        forward, backward = network['forward'], network['backward']
    for first in firsts:
        with open(_record_path(partial, first)) as f:
            record = json.load(f)
        targets['images'] += record['images']
        for annotation in record['annotations']:
            targets['annotations'].append(dict(id=len(targets['annotations']) + 1,
                                               **annotation))
        predictions += record['predictions']
        if record['bn'] is not None:
            bn_first.append(record['bn'][0])
            bn_last.append(record['bn'][1])
        forward += record['forward']
        backward += record['backward']
    # No BN loss where nothing was optimized (ProceduralSynthesizer): None, not NaN (not JSON).
    stats = dict(bn_loss_first_step=float(np.nanmean(bn_first)) if bn_first else None,
                 bn_loss_last_step=float(np.nanmean(bn_last)) if bn_last else None,
                 teacher_forward_per_image=forward / num,
                 teacher_backward_per_image=backward / num)
    return targets, predictions, stats


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
    batch_size = args.batch_size or cfg.train_dataloader.batch_size
    partial = args.out.rstrip('/') + '.partial'
    manifest = _manifest(args, cfg, hook, batch_size)

    rank, world_size, device = _init_distributed(args.device)
    if rank == 0:
        _start_partial(partial, manifest, [osp.relpath(sys.argv[0]), *sys.argv[1:]])
    _barrier()
    problem = _partial_problem(partial, manifest)
    if problem:
        finish_distributed()
        sys.exit(problem if rank == 0 else 1)

    sizes = {first: min(batch_size, args.num - first) for first in range(0, args.num, batch_size)}
    pending = [first for first in sizes if not osp.exists(_record_path(partial, first))]
    made = sum(sizes[first] for first in pending)
    if rank == 0 and made < args.num:
        print(f'{partial}: {args.num - made} of {args.num} images were made by an earlier run '
              f'and are kept; making the other {made} on {world_size} process(es).')
    elif rank == 0:
        print(f'Making {made} images on {world_size} process(es) in {partial} (if the run is '
              'stopped, the same command continues it).')

    set_random_seed(args.seed)  # the same initial weights in every run (a generator network)
    distiller = MODELS.build(cfg.model).to(device)
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    synthesizer = build_synthesizer(hook.synthesizer, distiller, dataset)
    _barrier()
    start_time = time.time()
    network = None
    if synthesizer.has_parameters:
        network = _prepare_network(synthesizer, dataset, args, batch_size, partial, rank,
                                   device)
    mine = pending[rank::world_size]
    progress = ProgressBar(sum(sizes[first] for first in mine)) if rank == 0 else None
    for first in mine:
        _make_batch(synthesizer, distiller, dataset, first, sizes[first], args, partial, device)
        if progress is not None:
            progress.update(sizes[first])
    _barrier()
    if rank == 0:
        elapsed = time.time() - start_time
        targets, predictions, stats = _merge(partial, list(sizes), dataset.metainfo['classes'],
                                             network, args.num)
        fidelity = _coco_eval(targets, predictions)
        summary = dict(config=args.config, num_images=args.num, fidelity=fidelity, **stats,
                       images_per_second=made / elapsed if made else None, seconds=elapsed,
                       images_made=made, processes=world_size,
                       synthesizer=hook.synthesizer.to_dict(), device=device,
                       stored_outputs=args.store_outputs)
        backend = AtomicLocalBackend()
        for name, data in (('targets.json', targets),
                           ('teacher_predictions.json', predictions),
                           ('summary.json', summary)):
            backend.put_text(json.dumps(data), osp.join(partial, name))
        os.replace(partial, args.out)
        # Last: a kill just before this leaves the bookkeeping in a complete bank, unused.
        shutil.rmtree(osp.join(args.out, RESUME_DIR))
        print('\n' + json.dumps({key: summary[key] for key in (
            'fidelity', 'bn_loss_first_step', 'bn_loss_last_step', 'images_per_second',
            'teacher_forward_per_image', 'teacher_backward_per_image')}))
    finish_distributed()


if __name__ == '__main__':
    main()
