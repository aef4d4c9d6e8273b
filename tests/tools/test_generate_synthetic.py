"""tools/generate_synthetic.py builds the config's synthesizer and writes images, COCO targets,
teacher predictions and stored teacher outputs, and reports fidelity and the teacher passes per
image; it never overwrites an existing output, and a killed run with a generator network
resumes without training it again. (Several processes and resuming inversion:
test_generate_synthetic_dist.py.)"""
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import time
from typing import List

import cv2
from pycocotools.coco import COCO

from conftest import (DFKD_CONFIG, REPO_ROOT, run_tool, save_random_teacher_checkpoint,
                      shrink_config)

BANK_CONFIG = osp.join(REPO_ROOT, 'configs', 'demo', 'dfkd_bank_deit_tiny_shapes.py')
INVERSION = dict(type='InversionSynthesizer', total_steps=5, lowres_steps=2,
                 fp_sampling=dict(start=2, interval=1, score_thr=0.5))


def write_config(data_root: str, teacher_ckpt: str, path: str, synthesizer: dict = INVERSION,
                 draw_targets: bool = False) -> str:
    """The demo data-free config shrunk to 128 px images, synthesis by ``synthesizer``."""
    from mmdfkd.utils import load_config
    cfg = shrink_config(load_config(DFKD_CONFIG), data_root)
    cfg.model.teachers[0].checkpoint = teacher_ckpt
    cfg.model.student.test_cfg.score_thr = 0.0
    cfg.train_dataloader.dataset.draw_targets = draw_targets
    cfg.custom_hooks = [dict(type='ImageSynthesisHook', synthesizer=synthesizer)]
    cfg.dump(path)
    return path


def kill_after_first_batch(args: List[str]) -> None:
    """Runs ``python ARGS`` (a tools/generate_synthetic.py command) and kills it with SIGKILL
    as soon as it has finished its first batch."""
    out = args[args.index('--out') + 1]
    process = subprocess.Popen([sys.executable, *args], cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while not finished_batches(out) and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, 'the run ended before it could be killed'
    os.killpg(process.pid, signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL


def finished_batches(out: str) -> List[dict]:
    """The records of the batches a run of ``--out OUT`` in progress has finished."""
    records = osp.join(out + '.partial', '.resume', 'batches')
    if not osp.isdir(records):
        return []
    finished = []
    for name in sorted(os.listdir(records)):
        if name.endswith('.json'):
            with open(osp.join(records, name)) as f:
                finished.append(json.load(f))
    return finished


def test_generates_a_coco_set_with_fidelity(tiny_shapes_root, tmp_path):
    teacher_ckpt = save_random_teacher_checkpoint(str(tmp_path / 'teacher.pth'))
    config = write_config(tiny_shapes_root, teacher_ckpt, str(tmp_path / 'dfkd.py'))
    out = str(tmp_path / 'synthetic')
    result = run_tool(['tools/generate_synthetic.py', config, '--num', '3', '--batch-size', '2',
                       '--out', out])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # Items that carry their targets give the same images: the targets are the same.
    same = write_config(tiny_shapes_root, teacher_ckpt, str(tmp_path / 'drawn.py'),
                        draw_targets=True)
    result = run_tool(['tools/generate_synthetic.py', same, '--num', '3', '--batch-size', '2',
                       '--out', str(tmp_path / 'drawn')])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for name in ('0000000.png', '0000002.png'):
        assert (open(osp.join(out, 'images', name), 'rb').read()
                == open(osp.join(str(tmp_path / 'drawn'), 'images', name), 'rb').read())

    targets = COCO(osp.join(out, 'targets.json'))
    assert len(targets.getImgIds()) == 3
    assert len(targets.getAnnIds()) >= 3  # at least one sampled box per image
    for image in targets.loadImgs(targets.getImgIds()):
        pixels = cv2.imread(osp.join(out, 'images', image['file_name']))
        assert pixels.shape == (image['height'], image['width'], 3) == (128, 128, 3)
    predictions = json.load(open(osp.join(out, 'teacher_predictions.json')))
    assert predictions and {'image_id', 'category_id', 'bbox', 'score'} <= set(predictions[0])
    summary = json.load(open(osp.join(out, 'summary.json')))
    assert 0 <= summary['fidelity']['bbox_mAP'] <= 1
    assert summary['bn_loss_first_step'] > 0 and summary['images_per_second'] > 0
    assert summary['bn_loss_last_step'] != summary['bn_loss_first_step']
    assert summary['synthesizer'] == json.loads(json.dumps(INVERSION))
    # Per image, 5 inversion steps (a forward and a backward pass of the teacher each) and
    # false-positive sampling after steps 2, 3, 4 and 5 (a forward pass each).
    assert summary['teacher_forward_per_image'] == 9.0
    assert summary['teacher_backward_per_image'] == 5.0
    assert (summary['images_made'], summary['processes']) == (3, 1)
    assert sorted(os.listdir(out)) == ['images', 'summary.json', 'targets.json',
                                       'teacher_predictions.json']
    assert not osp.exists(out + '.partial')

    again = run_tool(['tools/generate_synthetic.py', config, '--num', '1', '--out', out])
    assert again.returncode != 0 and 'exists' in again.stderr
    assert len(COCO(osp.join(out, 'targets.json')).getImgIds()) == 3


def test_procedural_images_cost_no_teacher_pass_and_have_no_fidelity(tiny_shapes_root,
                                                                      tmp_path):
    teacher_ckpt = save_random_teacher_checkpoint(str(tmp_path / 'teacher.pth'))
    config = write_config(tiny_shapes_root, teacher_ckpt, str(tmp_path / 'procedural.py'),
                          synthesizer=dict(type='ProceduralSynthesizer'))
    out = str(tmp_path / 'procedural')
    result = run_tool(['tools/generate_synthetic.py', config, '--num', '3', '--batch-size', '2',
                       '--out', out])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.load(open(osp.join(out, 'summary.json')))
    # No targets (nothing was drawn into the images), nothing optimized: no fidelity and no
    # BN loss (None, valid JSON), and no teacher pass made them.
    assert summary['fidelity'] == dict(bbox_mAP=None, bbox_mAP_50=None)
    assert summary['bn_loss_first_step'] is None and summary['bn_loss_last_step'] is None
    assert summary['teacher_forward_per_image'] == summary['teacher_backward_per_image'] == 0
    targets = COCO(osp.join(out, 'targets.json'))
    assert len(targets.getImgIds()) == 3 and not targets.getAnnIds()


def test_bank_replaces_the_online_teacher(tiny_shapes_root, tmp_path):
    import pytest
    import torch
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.dataset import pseudo_collate

    from mmdfkd.datasets import SyntheticBankDataset
    from demo.shapes_coco import SHAPES_CLASSES
    from mmdfkd.utils import load_config
    register_all_modules()
    teacher_ckpt = save_random_teacher_checkpoint(str(tmp_path / 'teacher.pth'))
    config = write_config(tiny_shapes_root, teacher_ckpt, str(tmp_path / 'dfkd.py'))
    out = str(tmp_path / 'bank')
    result = run_tool(['tools/generate_synthetic.py', config, '--num', '2', '--out', out,
                       '--store-outputs'])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    dataset = SyntheticBankDataset(data_root=out, metainfo=dict(classes=SHAPES_CLASSES))
    stored = dataset[0]['data_samples'].teacher_outputs['teacher0']
    # One map per FPN level of the demo teacher (strides 8, 16, 32), 128 channels each.
    assert [m.shape[1] for m in stored['sources']['neck']] == [128] * 3
    assert stored['sources']['neck'][0].dtype == torch.float16
    assert set(stored['detections']) == {'bboxes', 'scores', 'labels'}

    distiller = MODELS.build(load_config(config).model).eval()  # eval: no drop-path noise
    calls = []
    distiller.teachers[0].backbone.register_forward_hook(lambda *a: calls.append(1))
    batch = distiller.data_preprocessor(pseudo_collate([dataset[0], dataset[1]]), False)
    with torch.no_grad():
        from_bank = distiller.loss(batch['inputs'], batch['data_samples'])
        assert calls == []  # the teacher did not run
        for sample in batch['data_samples']:
            sample.pop('teacher_outputs')
        online = distiller.loss(batch['inputs'], batch['data_samples'])
    assert calls  # without stored outputs it does
    for key in ('loss_PKDLoss_neck', 'loss_ClassificationKDLoss_bbox_head'):
        assert from_bank[key].item() == pytest.approx(online[key].item(), rel=2e-2, abs=1e-3)
    assert sum(from_bank['loss_PseudoBoxLoss_cls']).item() == pytest.approx(
        sum(online['loss_PseudoBoxLoss_cls']).item(), rel=1e-3)

    # The Runner trains from the bank through tools/train.py.
    cfg = shrink_config(load_config(BANK_CONFIG), tiny_shapes_root, max_iters=2)
    cfg.train_dataloader.dataset.data_root = out
    cfg.model.teachers[0].checkpoint = teacher_ckpt
    cfg.dump(str(tmp_path / 'bank_cfg.py'))
    train = run_tool(['tools/train.py', str(tmp_path / 'bank_cfg.py'), '--work-dir',
                      str(tmp_path / 'work')])
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    assert 'loss_PKDLoss_neck' in train.stdout + train.stderr


def test_bank_refuses_moving_pipelines_and_missing_outputs(tmp_path):
    import pytest

    from mmdfkd.datasets import SyntheticBankDataset
    (tmp_path / 'teacher_outputs').mkdir()
    with pytest.raises(ValueError, match=r"\['RandomFlip'\] would move pixels"):
        SyntheticBankDataset(data_root=str(tmp_path), pipeline=[dict(type='RandomFlip')])
    with pytest.raises(FileNotFoundError, match='--store-outputs'):
        SyntheticBankDataset(data_root=str(tmp_path / 'nowhere'))


def test_a_generator_network_is_trained_then_draws_and_a_resumed_run_reuses_it(
        tiny_shapes_root, tmp_path):
    teacher_ckpt = save_random_teacher_checkpoint(str(tmp_path / 'teacher.pth'))
    config = write_config(tiny_shapes_root, teacher_ckpt, str(tmp_path / 'dfkd.py'),
                          dict(type='GeneratorSynthesizer', network=dict(base_channels=16)))
    args = ['tools/generate_synthetic.py', config, '--num', '6', '--batch-size', '2',
            '--generator-iters', '2', '--store-outputs']
    out = str(tmp_path / 'generated')
    result = run_tool([*args, '--out', out])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.load(open(osp.join(out, 'summary.json')))
    assert summary['synthesizer']['type'] == 'GeneratorSynthesizer'
    assert summary['bn_loss_first_step'] > 0 and 0 <= summary['fidelity']['bbox_mAP'] <= 1
    assert len(COCO(osp.join(out, 'targets.json')).getImgIds()) == 6
    # Only the training costs teacher passes: 2 updates on batches of 2, over 6 images.
    assert summary['teacher_forward_per_image'] == summary['teacher_backward_per_image'] == \
        2 * 2 / 6

    # Killed after its first batch, the run has saved its trained network; the same command
    # loads it instead of training again, and draws the same images.
    resumed = str(tmp_path / 'resumed')
    kill_after_first_batch([*args, '--out', resumed])
    done = 2 * len(finished_batches(resumed))
    assert 2 <= done < 6
    result = run_tool([*args, '--out', resumed])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert 'Loading the generator network trained by the earlier run' in result.stdout
    assert f'{done} of 6 images were made by an earlier run and are kept' in result.stdout
    again = json.load(open(osp.join(resumed, 'summary.json')))
    for key in ('bn_loss_first_step', 'bn_loss_last_step', 'teacher_forward_per_image',
                'fidelity'):
        assert again[key] == summary[key], key
    for folder, suffix in (('images', '.png'), ('teacher_outputs', '.pt')):
        for i in range(6):
            name = f'{i:07d}{suffix}'
            assert (open(osp.join(out, folder, name), 'rb').read()
                    == open(osp.join(resumed, folder, name), 'rb').read()), name


def test_missing_teacher_checkpoint_is_one_line_before_anything_is_written(tmp_path):
    missing = str(tmp_path / 'no_teacher.pth')
    out = str(tmp_path / 'synthetic')
    result = run_tool(['tools/generate_synthetic.py', BANK_CONFIG, '--num', '1', '--out', out,
                       '--cfg-options', f'model.teachers.0.checkpoint={missing}'])
    assert result.returncode != 0
    assert 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(
        f'Teacher checkpoint {missing!r} does not exist')
    assert not osp.exists(out) and not osp.exists(out + '.partial')
