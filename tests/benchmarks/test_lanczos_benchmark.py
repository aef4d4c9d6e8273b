"""benchmarks/lanczos.py: the half-size val split it evaluates on, the test pipeline with the
Lanczos resize in place of mmdet's, the evaluation of a checkpoint on the small images, and
its report."""
import importlib.util
import json
import os.path as osp

import cv2
import numpy as np
import pytest

from conftest import REPO_ROOT, save_random_teacher_checkpoint

_spec = importlib.util.spec_from_file_location(
    'lanczos_benchmark', osp.join(REPO_ROOT, 'benchmarks', 'lanczos.py'))
lanczos = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lanczos)


def test_the_half_size_split_scales_images_and_boxes_together(tiny_shapes_root, tmp_path):
    out = lanczos.shrink_split(tiny_shapes_root, str(tmp_path / 'half'))
    with open(osp.join(tiny_shapes_root, 'annotations', 'instances_val.json')) as f:
        original = json.load(f)
    with open(osp.join(out, 'annotations', 'instances_val.json')) as f:
        small = json.load(f)
    for before, after in zip(original['images'], small['images']):
        assert (after['width'], after['height']) == (before['width'] // 2,
                                                     before['height'] // 2)
        pixels = cv2.imread(osp.join(out, 'val', after['file_name']))
        assert pixels.shape == (after['height'], after['width'], 3)
        # Area averaging: a pixel is the mean of its 2x2 block.
        full = cv2.imread(osp.join(tiny_shapes_root, 'val', before['file_name'])).astype(float)
        block_mean = full.reshape(after['height'], 2, after['width'], 2, 3).mean((1, 3))
        assert np.abs(pixels - block_mean).max() <= 1
    for before, after in zip(original['annotations'], small['annotations']):
        assert after['bbox'] == pytest.approx([v / 2 for v in before['bbox']])
        assert after['area'] == pytest.approx(before['area'] / 4)


def test_the_test_resize_is_replaced_with_its_arguments_kept():
    cfg = lanczos.experiment_config(lanczos.TEACHER_CONFIG, '/tmp/unused', 'data/demo')
    lanczos.with_test_resize(cfg, lanczos.RESIZES['lanczos5'])
    (resize, ) = [s for s in cfg.test_dataloader.dataset.pipeline if 'Resize' in s['type']]
    assert resize == dict(type='LanczosResize', scale=(128, 128), keep_ratio=True, order=5)


def test_a_checkpoint_is_evaluated_on_the_upscaled_small_images(tiny_shapes_root, tmp_path):
    """The Lanczos test pipeline runs through mmengine's Runner and pycocotools, with boxes
    mapped back to the small images."""
    checkpoint = save_random_teacher_checkpoint(str(tmp_path / 'teacher.pth'))
    small = lanczos.shrink_split(tiny_shapes_root, str(tmp_path / 'half'))
    cfg = lanczos.experiment_config(lanczos.TEACHER_CONFIG, str(tmp_path / 'run'), small)
    cfg.test_dataloader.num_workers = 0
    cfg.test_dataloader.persistent_workers = False
    lanczos.with_test_resize(cfg, lanczos.RESIZES['lanczos3'])
    metrics = lanczos.evaluate(cfg, checkpoint)
    assert set(metrics) == {'bbox_mAP', 'bbox_mAP_50'}
    assert 0 <= metrics['bbox_mAP'] <= metrics['bbox_mAP_50'] <= 1


def test_report_lists_every_mode_and_resize():
    entry = dict(bbox_mAP=0.25, bbox_mAP_50=0.5)
    results = dict(date='2026-11-30', machine='2 CPU cores', settings=dict(num=4),
                   inversion={mode: dict(fidelity_mAP=0.3, fidelity_mAP_50=0.6,
                                         images_per_second=0.2)
                              for mode in lanczos.UPSAMPLE_MODES},
                   upscaling={f'{model}/{key}': entry for model in ('teacher', 'student')
                              for key in ['original'] + [f'half_size_{n}'
                                                         for n in lanczos.RESIZES]})
    table = lanczos.report(results)
    assert '| lanczos5 | 0.300 | 0.600 | 0.200 |' in table
    assert ('| student | 0.250 (0.500) | 0.250 (0.500) | 0.250 (0.500) | 0.250 (0.500) |'
            in table)
