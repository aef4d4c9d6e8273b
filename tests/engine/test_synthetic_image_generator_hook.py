"""SyntheticImageGeneratorHook: data-free training through tools/train.py (no real training
image), checkpoint and resume of the synthetic images, and different images per rank."""
import glob
import json
import os.path as osp
import shutil

import torch
from mmengine.dataset import pseudo_collate

from conftest import (DFKD_CONFIG, run_tool, save_random_teacher_checkpoint,
                      write_tiny_dfkd_config)

def test_data_free_training_saves_and_resumes(tiny_shapes_root, tmp_path):
    # A copy of the data without its training split: nothing there to read.
    data_root = str(tmp_path / 'val_only')
    shutil.copytree(tiny_shapes_root, data_root,
                    ignore=shutil.ignore_patterns('train', 'instances_train.json'))
    assert not osp.exists(osp.join(data_root, 'train'))
    teacher_ckpt = save_random_teacher_checkpoint(str(tmp_path / 'teacher.pth'))
    config = write_tiny_dfkd_config(data_root, teacher_ckpt, str(tmp_path / 'dfkd.py'))
    work_dir = str(tmp_path / 'work')

    first = run_tool(['tools/train.py', config, '--work-dir', work_dir])
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    log = first.stdout + first.stderr
    assert 'BN-statistics prior in force' in log
    records = [json.loads(line) for path in glob.glob(osp.join(
        work_dir, '*', 'vis_data', 'scalars.json')) for line in open(path)]
    train = [r for r in records if 'loss' in r]
    assert len(train) == 4
    for key in ('syn_det_t0', 'syn_bn_t0', 'syn_tv_l1', 'syn_adi_disagreement',
                'loss_PKDLoss_neck', 'PseudoBoxLoss_loss_cls'):
        assert all(key in r for r in train), key
    assert osp.isfile(osp.join(work_dir, 'synthetic_vis', 'iter_2.png'))
    ckpt = torch.load(osp.join(work_dir, 'iter_4.pth'), weights_only=True)
    state = ckpt['synthetic_images']
    assert len(state['buffer']) == 2
    assert state['buffer'][0]['image'].dtype == torch.uint8
    assert state['cohort']['age'] == 4

    second = run_tool(['tools/train.py', config, '--work-dir', work_dir, '--resume',
                       '--cfg-options', 'train_cfg.max_iters=6'])
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    log = second.stdout + second.stderr
    assert 'resumed epoch: 0, iter: 4' in log
    assert 'Synthetic images restored: 2 in the buffer, cohort at step 4' in log
    assert osp.isfile(osp.join(work_dir, 'iter_6.pth'))


class _Runner:
    """The parts of an mmengine Runner the hook reads."""

    def __init__(self, model):
        from mmengine.logging import MessageHub, MMLogger
        self.model = model
        self.seed = 0
        self.iter = 0
        self.logger = MMLogger.get_current_instance()
        self.message_hub = MessageHub.get_current_instance()


def test_each_rank_synthesizes_different_images(monkeypatch, tmp_path):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    import mmdfkd.engine.hooks.synthetic_image_generator_hook as hook_module
    from mmdfkd.datasets import SyntheticDetDataset
    from mmdfkd.engine.hooks import SyntheticImageGeneratorHook
    from mmdfkd.utils import load_config
    register_all_modules()
    cfg = load_config(DFKD_CONFIG)
    cfg.model.teachers[0].checkpoint = save_random_teacher_checkpoint(str(tmp_path / 't.pth'))
    cfg.model.distill_losses = []
    distiller = MODELS.build(cfg.model)
    dataset = SyntheticDetDataset(4, img_size=(64, 64), metainfo=dict(classes=cfg.classes))

    images = []
    for rank in (0, 1):  # rank 1 also asks for more warm-up than its buffer holds
        monkeypatch.setattr(hook_module, 'get_dist_info', lambda rank=rank: (rank, 2))
        hook = SyntheticImageGeneratorHook(inversion=dict(total_steps=1), buffer_size=2,
                                           initial_cohorts=1 + 2 * rank)
        runner = _Runner(distiller)
        hook.before_train(runner)
        batch = pseudo_collate([dataset[0], dataset[1]])
        hook.before_train_iter(runner, 0, batch)
        assert len(batch['inputs']) == 2 and batch['inputs'][0].shape == (3, 64, 64)
        assert batch['inputs'][0].dtype == torch.uint8
        assert len(hook.buffer) == 2  # warm-up stops at the buffer size
        images.append(torch.stack(batch['inputs']).float())
    assert not torch.equal(images[0], images[1])


def test_generator_mode_trains_saves_and_resumes_its_network(tiny_shapes_root, tmp_path):
    from mmengine.config import Config
    teacher_ckpt = save_random_teacher_checkpoint(str(tmp_path / 'teacher.pth'))
    config = write_tiny_dfkd_config(tiny_shapes_root, teacher_ckpt, str(tmp_path / 'dfkd.py'))
    cfg = Config.fromfile(config)
    cfg.custom_hooks[0].update(mode='generator', generator_steps=2,
                               generator=dict(base_channels=16, num_upsamples=2))
    cfg.dump(config)
    work_dir = str(tmp_path / 'work')
    first = run_tool(['tools/train.py', config, '--work-dir', work_dir])
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    records = [json.loads(line) for path in glob.glob(osp.join(
        work_dir, '*', 'vis_data', 'scalars.json')) for line in open(path)]
    train = [r for r in records if 'loss' in r]
    assert len(train) == 4 and all('syn_det_t0' in r and 'syn_bn_t0' in r for r in train)
    network = torch.load(osp.join(work_dir, 'iter_4.pth'),
                         weights_only=True)['synthetic_images']['network']
    assert any(k.endswith('weight') for k in network['state_dict'])
    assert network['optim_wrapper']['state']  # Adam moments: the generator was updated
    assert osp.isfile(osp.join(work_dir, 'synthetic_vis', 'iter_2.png'))

    second = run_tool(['tools/train.py', config, '--work-dir', work_dir, '--resume',
                       '--cfg-options', 'train_cfg.max_iters=6'])
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert 'generator network and optimizer' in second.stdout + second.stderr
