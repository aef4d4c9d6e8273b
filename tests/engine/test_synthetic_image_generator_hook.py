"""SyntheticImageGeneratorHook: data-free training through tools/train.py (no real training
image), checkpoint and resume of the synthetic images, different images per rank, and
non-finite synthesis drawn again, counted in the log, and given up on when it persists."""
import glob
import json
import logging
import os.path as osp
import shutil

import pytest
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
    assert len(ckpt['synthetic_images']) == 1  # one state per rank
    state = ckpt['synthetic_images'][0]
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

    def __init__(self, model, dataset):
        from types import SimpleNamespace

        from mmengine.logging import MessageHub, MMLogger
        self.model = model
        self.train_dataloader = SimpleNamespace(dataset=dataset)
        self.seed = 0
        self.iter = 0
        self.logger = MMLogger.get_current_instance()
        self.message_hub = MessageHub.get_current_instance()


@pytest.fixture(scope='module')
def distiller_and_dataset(tmp_path_factory):
    """The demo data-free distiller (random teacher, no distillation term) and a dataset of
    64x64 targets."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    from mmdfkd.datasets import SyntheticDetDataset
    from mmdfkd.utils import load_config
    register_all_modules()
    cfg = load_config(DFKD_CONFIG)
    cfg.model.teachers[0].checkpoint = save_random_teacher_checkpoint(
        str(tmp_path_factory.mktemp('teacher') / 't.pth'))
    cfg.model.distill_losses = []
    dataset = SyntheticDetDataset(4, img_size=(64, 64), metainfo=dict(classes=cfg.classes))
    return MODELS.build(cfg.model), dataset


def test_each_rank_synthesizes_different_images(monkeypatch, distiller_and_dataset):
    import mmdfkd.engine.hooks.synthetic_image_generator_hook as hook_module
    from mmdfkd.engine.hooks import SyntheticImageGeneratorHook
    distiller, dataset = distiller_and_dataset

    images = []
    for rank in (0, 1):  # rank 1 also asks for more warm-up than its buffer holds
        monkeypatch.setattr(hook_module, 'get_dist_info', lambda rank=rank: (rank, 2))
        hook = SyntheticImageGeneratorHook(inversion=dict(total_steps=1), buffer_size=2,
                                           initial_cohorts=1 + 2 * rank)
        runner = _Runner(distiller, dataset)
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
                         weights_only=True)['synthetic_images'][0]['network']
    assert any(k.endswith('weight') for k in network['state_dict'])
    assert network['optim_wrapper']['state']  # Adam moments: the generator was updated
    assert osp.isfile(osp.join(work_dir, 'synthetic_vis', 'iter_2.png'))

    second = run_tool(['tools/train.py', config, '--work-dir', work_dir, '--resume',
                       '--cfg-options', 'train_cfg.max_iters=6'])
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert 'generator network and optimizer' in second.stdout + second.stderr


class _Records(logging.Handler):
    """Keeps the messages logged while attached."""

    def __init__(self) -> None:
        super().__init__()
        self.messages = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _nan_on_calls(monkeypatch, owner, name: str, calls: set) -> None:
    """Makes ``owner.name`` (a method returning a tensor, or a ``(loss, parts)`` pair) give
    NaN on the given 1-based call numbers."""
    original = getattr(owner, name)
    count = [0]

    def wrapper(self, *args, **kwargs):
        count[0] += 1
        out = original(self, *args, **kwargs)
        if count[0] not in calls:
            return out
        if isinstance(out, tuple):
            return out[0] * float('nan'), dict(out[1], syn_total=float('nan'))
        return out * float('nan')

    monkeypatch.setattr(owner, name, wrapper)


def _synthesize_one_batch(hook, distiller, dataset):
    runner = _Runner(distiller, dataset)
    handler = _Records()
    runner.logger.addHandler(handler)
    try:
        hook.before_train(runner)
        batch = pseudo_collate([dataset[0], dataset[1]])
        hook.before_train_iter(runner, 0, batch)
    finally:
        runner.logger.removeHandler(handler)
    return runner, batch, handler.messages


@pytest.mark.parametrize('mode', ['inversion', 'generator'])
def test_non_finite_synthesis_is_drawn_again_and_counted(monkeypatch, distiller_and_dataset,
                                                         mode):
    from mmdfkd.engine.hooks import SyntheticImageGeneratorHook
    from mmdfkd.models.synthesis import BoxConditionedGenerator, DetectorInverter
    distiller, dataset = distiller_and_dataset
    if mode == 'inversion':
        # The second and third refinement steps: the cohort is started again twice.
        _nan_on_calls(monkeypatch, DetectorInverter, 'image_loss', {2, 3})
    else:
        # The first generator loss (no update, new noise), then the first drawn images.
        _nan_on_calls(monkeypatch, DetectorInverter, 'image_loss', {1})
        _nan_on_calls(monkeypatch, BoxConditionedGenerator, 'forward', {3})
    hook = SyntheticImageGeneratorHook(
        inversion=dict(total_steps=2), mode=mode, buffer_size=2,
        generator=dict(base_channels=16, num_upsamples=2))
    runner, batch, messages = _synthesize_one_batch(hook, distiller, dataset)

    assert hook.nonfinite_redraws == 2
    assert runner.message_hub.get_scalar('train/syn_nonfinite_redraws').current() == 2
    warnings = [m for m in messages if m.startswith('Synthesis: non-finite')]
    assert len(warnings) == 1 + (mode == 'inversion')
    assert 'The batch is drawn again from new noise (1 in a row, 1 in all)' in warnings[0]
    assert len(batch['inputs']) == 2 and batch['inputs'][0].dtype == torch.uint8
    if mode == 'inversion':
        assert hook.inverter.finished(hook.cohort) is False and len(hook.buffer) == 2
    else:
        assert all(torch.isfinite(p).all() for p in hook.image_generator.parameters())
        assert any('drew non-finite images' in m for m in messages)


def test_persistent_non_finite_synthesis_gives_up(monkeypatch, distiller_and_dataset):
    from mmdfkd.engine.hooks import SyntheticImageGeneratorHook
    from mmdfkd.models.synthesis import DetectorInverter
    distiller, dataset = distiller_and_dataset
    _nan_on_calls(monkeypatch, DetectorInverter, 'image_loss', set(range(1, 100)))
    hook = SyntheticImageGeneratorHook(inversion=dict(total_steps=2), buffer_size=2,
                                       max_nonfinite_redraws=2)
    with pytest.raises(RuntimeError, match=r'non-finite values 3 times in a row .*giving up\. '
                       r'Lower the synthesis learning rate'):
        _synthesize_one_batch(hook, distiller, dataset)
    assert hook.nonfinite_redraws == 2 and not hook.buffer
