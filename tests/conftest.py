"""Shared fixtures: a tiny generated COCO dataset and a small config of the demo teacher."""
import os
import os.path as osp
import subprocess
import sys
from typing import Dict, List, Optional

import pytest

# timm may swap the ViT class for NaFlexVit when this is on; tests pin the plain class.
os.environ.setdefault('TIMM_USE_NAFLEXVIT', '0')

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TEACHER_CONFIG = osp.join(REPO_ROOT, 'configs', 'demo', 'retinanet_r18_shapes.py')
DFKD_CONFIG = osp.join(REPO_ROOT, 'configs', 'demo', 'dfkd_deit_tiny_shapes.py')


def run_tool(args: List[str], cwd: str = REPO_ROOT,
             env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    """Runs ``python tools/...`` as a user would, with ``env`` added to the environment; returns
    the completed process (never raises)."""
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={**os.environ, 'PYTHONUNBUFFERED': '1', **(env or {})})


@pytest.fixture(scope='session')
def tiny_shapes_root(tmp_path_factory) -> str:
    """A 16-train / 8-val shapes dataset of 128x128 images, generated once per session."""
    from demo.shapes_coco import make_shapes_coco
    root = str(tmp_path_factory.mktemp('shapes') / 'data')
    make_shapes_coco(root, num_train=16, num_val=8, img_size=128, seed=0)
    return root


def write_tiny_teacher_config(data_root: str, out_path: str, max_iters: int = 4,
                              ckpt_interval: int = 2) -> str:
    """Writes the demo teacher config shrunk to a few CPU iterations on ``data_root``."""
    from mmdfkd.utils import load_config
    cfg = shrink_config(load_config(TEACHER_CONFIG), data_root, max_iters, ckpt_interval)
    # A few iterations leave every score near the focal-loss prior (0.01): keep them all so
    # CocoMetric has detections to score.
    cfg.model.test_cfg.score_thr = 0.0
    cfg.dump(out_path)
    return out_path


def save_random_teacher_checkpoint(path: str, seed: int = 0) -> str:
    """Saves the demo teacher, randomly initialized, as an mmengine checkpoint."""
    import torch
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.runner import save_checkpoint

    from mmdfkd.utils import load_config
    register_all_modules()
    torch.manual_seed(seed)
    teacher = MODELS.build(load_config(TEACHER_CONFIG).model)
    save_checkpoint(dict(state_dict=teacher.state_dict(), meta=dict(seed=seed)), path)
    return path


def shrink_config(cfg, data_root: str, max_iters: int = 4, ckpt_interval: int = 2,
                  img_size: int = 128):
    """Shrinks a demo config to a few CPU iterations on ``data_root`` (in place)."""
    data_root = data_root.rstrip('/') + '/'
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].batch_size = 2
        cfg[loader].num_workers = 0
        cfg[loader].persistent_workers = False
        dataset = cfg[loader].dataset
        if dataset.type == 'SyntheticDetDataset':
            dataset.img_size = (img_size, img_size)
            continue
        if dataset.type == 'SyntheticBankDataset':
            continue  # its images have the size they were synthesized at
        dataset.data_root = data_root
        for step in dataset.pipeline:
            if step.type == 'Resize':
                step.scale = (img_size, img_size)
    for evaluator in ('val_evaluator', 'test_evaluator'):
        cfg[evaluator].ann_file = data_root + 'annotations/instances_val.json'
    cfg.train_cfg.max_iters = max_iters
    cfg.train_cfg.val_interval = max_iters
    cfg.param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
    cfg.default_hooks.checkpoint.interval = ckpt_interval
    cfg.default_hooks.checkpoint.max_keep_ckpts = -1
    cfg.default_hooks.logger.interval = 1
    cfg.randomness = dict(seed=0, deterministic=False)
    return cfg


def write_tiny_dfkd_config(data_root: str, teacher_ckpt: str, path: str) -> str:
    """Writes the demo data-free config shrunk to a few CPU iterations: 128 px images, 5
    inversion steps per image (2 at half resolution), FP sampling from step 2, the competition
    term on."""
    from mmdfkd.utils import load_config
    cfg = shrink_config(load_config(DFKD_CONFIG), data_root)
    cfg.model.teachers[0].checkpoint = teacher_ckpt
    cfg.model.student.test_cfg.score_thr = 0.0
    hook = cfg.custom_hooks[0]
    # Warm-up fills the buffer with one cohort (5 steps), then 1 step per iteration: a
    # checkpoint at iteration 4 holds a cohort in progress.
    hook.synthesizer.loss.update(adi_weight=0.5)
    hook.synthesizer.update(total_steps=5, lowres_steps=2,
                            fp_sampling=dict(start=2, interval=1, score_thr=0.5),
                            steps_per_iter=1, buffer_size=4, initial_cohorts=1)
    hook.update(vis_interval=2)
    cfg.dump(path)
    return path


def fake_demo_inputs(tmp_path) -> List[str]:
    """What `make demo` leaves for a benchmark that trains on its outputs, as files of a few
    bytes: the teacher checkpoint, the val annotations and the bank's summary (returned: their
    command-line flags)."""
    teacher = tmp_path / 'teacher.pth'
    teacher.write_bytes(b'weights')
    (tmp_path / 'data' / 'annotations').mkdir(parents=True)
    (tmp_path / 'data' / 'annotations' / 'instances_val.json').write_text('{}')
    (tmp_path / 'bank').mkdir()
    (tmp_path / 'bank' / 'summary.json').write_text('{"num_images": 4}')
    return ['--teacher-checkpoint', str(teacher), '--data-root', str(tmp_path / 'data'),
            '--bank', str(tmp_path / 'bank'), '--work-dir', str(tmp_path / 'work'),
            '--out-dir', str(tmp_path / 'results')]
