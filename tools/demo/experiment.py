"""Run configs on a local dataset with the mmengine Runner: the steps shared by the demo
(``tools/run_demo.py``) and the benchmarks (``benchmarks/``)."""
import gc
import hashlib
import json
import os
import os.path as osp
import subprocess
import sys
from typing import Any, Dict, List, Optional

from mmengine.config import Config
from mmengine.runner import Runner

from mmdfkd.utils.checkpoint_fit import checkpoint_fit_problem
from mmdfkd.utils.config import prepare_config, scale_iter_schedule
from mmdfkd.utils.file_hash import file_sha256

# This file is tools/demo/experiment.py of a repository checkout: the demo and the benchmarks
# run the configs and tools of that checkout.
REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# The model config of the demo's CNN teacher, as the distillation configs name it: the teacher
# that `teacher_checkpoint` and `teacher_config` of experiment_config() replace.
DEMO_TEACHER_MODEL = osp.join(REPO_ROOT, 'configs', 'demo', '_base_', 'models',
                              'retinanet_r18_shapes.py')


def experiment_config(config: str, work_dir: str, data_root: str, seed: int = 0,
                      iters: Optional[int] = None,
                      teacher_checkpoint: Optional[str] = None,
                      train_data_root: Optional[str] = None,
                      teacher_config: Optional[str] = None) -> Config:
    """A config with its data roots, work dir, seed, schedule length and teacher filled in.

    The val and test dataloaders and evaluators read ``data_root`` (COCO layout with
    ``annotations/instances_val.json``); the train dataloader reads ``train_data_root`` when
    one is given (the real data root for real-data runs, a synthetic bank for bank runs) and
    otherwise keeps the config's source (e.g. a ``SyntheticDetDataset``, which reads nothing).

    Args:
        config: Config file path.
        work_dir: Output directory of the run.
        data_root: Root of the evaluation data, e.g. ``data/demo``.
        train_data_root: Root of the training data; None keeps the config's.
        seed: Seed of the run (``randomness.seed``).
        iters: New training length; the schedule keeps its shape (see
            :func:`scale_iter_schedule`). None keeps the config's.
        teacher_checkpoint: Checkpoint of the demo teacher: it replaces the checkpoint of every
            teacher of a ``DetectionDistiller`` built from the demo teacher's model config
            (``DEMO_TEACHER_MODEL``); other teachers (e.g. the involution teacher of an
            ensemble) keep theirs. None keeps the config's.
        teacher_config: Config (model or training config) of another teacher to distill from
            in place of the demo teacher, wherever a distiller uses that (with its
            ``teacher_checkpoint``); None keeps the config's.

    Returns:
        The config, ready for :func:`train` or :func:`evaluate`.
    """
    cfg = prepare_config(config, work_dir=work_dir)
    data_root = data_root.rstrip('/') + '/'
    for loader in ('val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = data_root
    if train_data_root is not None:
        cfg.train_dataloader.dataset.data_root = train_data_root.rstrip('/') + '/'
    for evaluator in ('val_evaluator', 'test_evaluator'):
        cfg[evaluator].ann_file = data_root + 'annotations/instances_val.json'
    cfg.randomness = dict(seed=seed)
    cfg.experiment_name = osp.basename(work_dir.rstrip('/'))
    # Each run logs to its own visualizer (mmdet's configs name one 'visualizer', a process-wide
    # instance that would keep writing to the first run's work dir), and validation scalars are
    # logged by iteration, for the curves of validation_curve().
    cfg.visualizer.pop('name', None)
    cfg.default_hooks.logger.log_metric_by_epoch = False
    if iters is not None:
        scale_iter_schedule(cfg, iters)
    for teacher in cfg.model.get('teachers', []):
        if osp.abspath(str(teacher.config)) != DEMO_TEACHER_MODEL:
            continue
        if teacher_checkpoint is not None:
            teacher.checkpoint = teacher_checkpoint
        if teacher_config is not None:
            teacher.config = osp.abspath(teacher_config)
    return cfg


def config_fingerprint(config: str) -> str:
    """A short hash of a config as mmengine resolves it (its ``_base_`` files included), so a
    stored result can tell whether it was made with the config as it is now.

    ``{{fileDirname}}`` resolves to absolute paths inside the repository; they are hashed
    relative to it, so the same config hashes the same wherever the repository is checked out
    (the values are hashed, not ``pretty_text``, whose line breaks depend on their lengths).
    """
    values = json.dumps(Config.fromfile(config).to_dict(), sort_keys=True, default=repr)
    text = values.replace(REPO_ROOT, '<repository>')
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_fingerprint(path: str) -> str:
    """A short hash of a file's bytes (e.g. a checkpoint)."""
    return file_sha256(path)[:16]


def train(cfg: Config) -> str:
    """Trains a config with the mmengine Runner; returns the final checkpoint's path."""
    runner = Runner.from_cfg(cfg)
    runner.train()
    del runner
    gc.collect()
    return osp.join(cfg.work_dir, f'iter_{cfg.train_cfg.max_iters}.pth')


def evaluate(cfg: Config, checkpoint: str) -> Dict[str, float]:
    """COCO bbox metrics of ``checkpoint`` with the config's test dataloader and evaluator.

    Returns:
        dict: ``bbox_mAP`` and ``bbox_mAP_50``. A model that detects nothing above its score
        threshold (mmdet's CocoMetric then reports no metric) scores 0.

    Raises:
        ValueError: If the checkpoint's weights do not fit the config's model (missing or of
            another shape), which mmengine would load partially and evaluate anyway.
    """
    cfg.load_from = checkpoint
    runner = Runner.from_cfg(cfg)
    problem = checkpoint_fit_problem(runner.model, checkpoint)
    if problem:
        raise ValueError(f'{checkpoint} does not fit the model of the config: {problem}')
    metrics = runner.test()
    del runner
    gc.collect()
    if 'coco/bbox_mAP' not in metrics:
        print(f'[mmdfkd] {checkpoint} made no detection on the test set: its mAP is 0')
    return dict(bbox_mAP=metrics.get('coco/bbox_mAP', 0.0),
                bbox_mAP_50=metrics.get('coco/bbox_mAP_50', 0.0))


def validation_curve(work_dir: str) -> List[Dict[str, float]]:
    """The validation metrics logged by the latest run in ``work_dir``.

    Reads ``vis_data/scalars.json`` of mmengine's ``LocalVisBackend``.

    Returns:
        list[dict]: ``iter``, ``bbox_mAP`` and ``bbox_mAP_50`` per validation, in order.
    """
    runs = sorted(d for d in os.listdir(work_dir)
                  if osp.isfile(osp.join(work_dir, d, 'vis_data', 'scalars.json')))
    if not runs:
        return []
    curve = []
    with open(osp.join(work_dir, runs[-1], 'vis_data', 'scalars.json')) as f:
        for line in f:
            record = json.loads(line)
            if 'coco/bbox_mAP' in record:
                curve.append(dict(iter=int(record['step']), bbox_mAP=record['coco/bbox_mAP'],
                                  bbox_mAP_50=record['coco/bbox_mAP_50']))
    return curve


def demo_teacher_options(config: str, teacher_checkpoint: str,
                         teacher_config: Optional[str] = None) -> List[str]:
    """``--cfg-options`` entries that give every teacher of ``config`` built from the demo
    teacher's model config the checkpoint ``teacher_checkpoint`` (and ``teacher_config``, if
    given), as :func:`experiment_config` does."""
    options = []
    for index, teacher in enumerate(Config.fromfile(config).model.get('teachers', [])):
        if osp.abspath(str(teacher.config)) == DEMO_TEACHER_MODEL:
            options.append(f'model.teachers.{index}.checkpoint={teacher_checkpoint}')
            if teacher_config is not None:
                options.append(f'model.teachers.{index}.config={osp.abspath(teacher_config)}')
    return options


def synthesize_bank(config: str, out: str, num: int, teacher_checkpoint: str, seed: int = 0,
                    extra_options: Optional[List[str]] = None,
                    teacher_config: Optional[str] = None) -> Dict[str, Any]:
    """Writes a bank of synthetic images with the teacher's outputs
    (``tools/generate_synthetic.py --store-outputs``) in a subprocess.

    Args:
        config: A data-free config (its ``ImageSynthesisHook`` synthesizer is used).
        out: Bank directory; must not exist.
        num: Number of images.
        teacher_checkpoint: Checkpoint of the demo teacher (see :func:`experiment_config`).
        seed: Synthesis seed.
        extra_options: More ``--cfg-options`` entries (``key=value``).
        teacher_config: Another teacher's config in place of the demo teacher's (see
            :func:`experiment_config`).

    Returns:
        dict: The bank's ``summary.json`` (fidelity, images per second, ...) plus ``path``.

    Raises:
        subprocess.CalledProcessError: If the generation fails (its output is shown).
    """
    options = [*demo_teacher_options(config, teacher_checkpoint, teacher_config),
               *(extra_options or [])]
    cmd = [sys.executable, osp.join(REPO_ROOT, 'tools', 'generate_synthetic.py'), config,
           '--num', str(num), '--out', out, '--store-outputs', '--seed', str(seed),
           *(['--cfg-options', *options] if options else [])]
    print('[mmdfkd] ' + ' '.join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    with open(osp.join(out, 'summary.json')) as f:
        return dict(json.load(f), path=out)
