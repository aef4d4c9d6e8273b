"""ImageSynthesisHook: data-free training through tools/train.py (no real training image, no
target drawn for nothing), checkpoint and resume of the synthesis state, different images per
rank, and non-finite synthesis drawn again, counted in the log, and given up on when it
persists."""
import glob
import json
import logging
import os.path as osp
import shutil

import pytest
import torch
from mmengine.dataset import pseudo_collate

from conftest import DFKD_CONFIG, run_tool, save_random_teacher_checkpoint, shrink_config
from mmdfkd.utils import load_checkpoint_file

INVERSION = dict(type='InversionSynthesizer', loss=dict(adi_weight=0.5), total_steps=5,
                 lowres_steps=2, fp_sampling=dict(start=2, interval=1, score_thr=0.5),
                 steps_per_iter=1, buffer_size=4, initial_cohorts=1)
GENERATOR = dict(type='GeneratorSynthesizer', network=dict(base_channels=16, num_upsamples=2),
                 steps_per_iter=2)


def write_config(data_root: str, teacher_ckpt: str, path: str, synthesizer: dict) -> str:
    """The demo data-free config shrunk to a few CPU iterations (128 px images, checkpoints at
    iterations 2 and 4), items without targets, synthesis by ``synthesizer`` with a grid of
    images every 2 iterations."""
    from mmdfkd.utils import load_config
    cfg = shrink_config(load_config(DFKD_CONFIG), data_root)
    cfg.model.teachers[0].checkpoint = teacher_ckpt
    cfg.model.student.test_cfg.score_thr = 0.0
    cfg.train_dataloader.dataset.draw_targets = False
    cfg.custom_hooks = [dict(type='ImageSynthesisHook', synthesizer=synthesizer, vis_interval=2)]
    cfg.dump(path)
    return path


def _train_records(work_dir: str) -> list:
    return [r for path in glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
            for r in map(json.loads, open(path)) if 'loss' in r]


def test_data_free_training_saves_and_resumes(tiny_shapes_root, tmp_path):
    # A copy of the data without its training split: nothing there to read.
    data_root = str(tmp_path / 'val_only')
    shutil.copytree(tiny_shapes_root, data_root,
                    ignore=shutil.ignore_patterns('train', 'instances_train.json'))
    assert not osp.exists(osp.join(data_root, 'train'))
    teacher_ckpt = save_random_teacher_checkpoint(str(tmp_path / 'teacher.pth'))
    config = write_config(data_root, teacher_ckpt, str(tmp_path / 'dfkd.py'), INVERSION)
    work_dir = str(tmp_path / 'work')

    first = run_tool(['tools/train.py', config, '--work-dir', work_dir])
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    log = first.stdout + first.stderr
    assert 'BN-statistics prior in force' in log
    train = _train_records(work_dir)
    assert len(train) == 4
    for key in ('syn_det_t0', 'syn_bn_t0', 'syn_tv_l2', 'syn_adi_disagreement',
                'syn_nonfinite_redraws'):
        assert all(key in r for r in train), key
    assert all(any(k.startswith('loss') and k != 'loss' for k in r) for r in train)
    assert osp.isfile(osp.join(work_dir, 'synthetic_vis', 'iter_2.png'))
    ckpt = load_checkpoint_file(osp.join(work_dir, 'iter_4.pth'))
    assert len(ckpt['image_synthesis']) == 1  # one state per rank
    state = ckpt['image_synthesis'][0]
    assert state['type'] == 'InversionSynthesizer' and state['rng'].dtype == torch.uint8
    synthesizer = state['synthesizer']
    assert len(synthesizer['buffer']) == 2
    assert synthesizer['buffer'][0]['image'].dtype == torch.uint8
    # The cohort in progress (4 of its 5 steps, one per iteration) as what recomputes it.
    cohort = synthesizer['cohort']
    assert set(cohort) == {'targets', 'start_rng', 'refine_calls'}
    assert [steps for _, steps in cohort['refine_calls']] == [1, 1, 1, 1]
    # Started, like the buffer's first cohort, from the first batch's targets (warm-up).
    assert [m['img_id'] for m in cohort['targets']['metainfo']] == \
        [e['metainfo']['img_id'] for e in synthesizer['buffer']]

    second = run_tool(['tools/train.py', config, '--work-dir', work_dir, '--resume',
                       '--cfg-options', 'train_cfg.max_iters=6'])
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    log = second.stdout + second.stderr
    assert 'resumed epoch: 0, iter: 4' in log
    assert 'Synthetic images restored: 2 in the buffer, cohort at step 4' in log
    assert osp.isfile(osp.join(work_dir, 'iter_6.pth'))


class _Runner:
    """The parts of an mmengine Runner the hook reads."""

    def __init__(self, model, dataset, work_dir='.'):
        from types import SimpleNamespace

        from mmengine.logging import MessageHub, MMLogger
        self.model = model
        self.train_dataloader = SimpleNamespace(dataset=dataset)
        self.seed = 0
        self.iter = 0
        self.work_dir = work_dir
        self.logger = MMLogger.get_current_instance()
        self.message_hub = MessageHub.get_current_instance()


@pytest.fixture(scope='module')
def distiller_and_dataset(tmp_path_factory):
    """The demo data-free distiller (random teacher, no distillation term) and a dataset of
    64x64 items without targets."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    from mmdfkd.datasets import SyntheticDetDataset
    from mmdfkd.utils import load_config
    register_all_modules()
    cfg = load_config(DFKD_CONFIG)
    cfg.model.teachers[0].checkpoint = save_random_teacher_checkpoint(
        str(tmp_path_factory.mktemp('teacher') / 't.pth'))
    cfg.model.distill_losses = []
    dataset = SyntheticDetDataset(4, img_size=(64, 64), metainfo=dict(classes=cfg.classes),
                                  draw_targets=False)
    return MODELS.build(cfg.model), dataset


def _hook(synthesizer: dict, **kwargs):
    from mmdfkd.engine.hooks import ImageSynthesisHook
    return ImageSynthesisHook(synthesizer=synthesizer, **kwargs)


def test_each_rank_synthesizes_different_images(monkeypatch, distiller_and_dataset):
    import mmdfkd.engine.hooks.image_synthesis_hook as hook_module
    distiller, dataset = distiller_and_dataset

    images = []
    for rank in (0, 1):  # rank 1 also asks for more warm-up than its buffer holds
        monkeypatch.setattr(hook_module, 'get_dist_info', lambda rank=rank: (rank, 2))
        hook = _hook(dict(type='InversionSynthesizer', total_steps=1, buffer_size=2,
                          initial_cohorts=1 + 2 * rank))
        runner = _Runner(distiller, dataset)
        hook.before_train(runner)
        batch = pseudo_collate([dataset[0], dataset[1]])
        assert 'inputs' not in batch  # the items are meta information only
        hook.before_train_iter(runner, 0, batch)
        assert len(batch['inputs']) == 2 and batch['inputs'][0].shape == (3, 64, 64)
        assert batch['inputs'][0].dtype == torch.uint8
        assert all('gt_instances' in s for s in batch['data_samples'])
        assert len(hook.synthesizer.buffer) == 2  # warm-up stops at the buffer size
        images.append(torch.stack(batch['inputs']).float())
    assert not torch.equal(images[0], images[1])


def test_generator_synthesizer_trains_saves_and_resumes_its_network(tiny_shapes_root,
                                                                      tmp_path):
    teacher_ckpt = save_random_teacher_checkpoint(str(tmp_path / 'teacher.pth'))
    config = write_config(tiny_shapes_root, teacher_ckpt, str(tmp_path / 'dfkd.py'), GENERATOR)
    work_dir = str(tmp_path / 'work')
    first = run_tool(['tools/train.py', config, '--work-dir', work_dir])
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    train = _train_records(work_dir)
    assert len(train) == 4 and all('syn_det_t0' in r and 'syn_bn_t0' in r for r in train)
    state = load_checkpoint_file(osp.join(work_dir, 'iter_4.pth'))['image_synthesis'][0]
    assert state['type'] == 'GeneratorSynthesizer'
    assert any(k.endswith('weight') for k in state['synthesizer']['network'])
    # Adam moments after 2 updates per iteration: the network was trained.
    assert state['synthesizer']['optim_wrapper']['state'][0]['step'] == 8
    assert osp.isfile(osp.join(work_dir, 'synthetic_vis', 'iter_2.png'))

    second = run_tool(['tools/train.py', config, '--work-dir', work_dir, '--resume',
                       '--cfg-options', 'train_cfg.max_iters=6'])
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert 'Synthetic images restored: generator network and optimizer' in \
        second.stdout + second.stderr


def test_a_checkpoint_of_another_synthesizer_is_refused(distiller_and_dataset):
    distiller, dataset = distiller_and_dataset
    state = dict(type='GeneratorSynthesizer', synthesizer={}, rng=torch.Generator().get_state(),
                 nonfinite_redraws=0)
    hook = _hook(dict(type='InversionSynthesizer', total_steps=1))
    runner = _Runner(distiller, dataset)
    hook.after_load_checkpoint(runner, dict(image_synthesis=[state]))
    with pytest.raises(ValueError, match='holds the state of a GeneratorSynthesizer, the config '
                       'synthesizes with a InversionSynthesizer: resume with the config'):
        hook.before_train(runner)


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


@pytest.mark.parametrize('kind', ['InversionSynthesizer', 'GeneratorSynthesizer'])
def test_non_finite_synthesis_is_drawn_again_and_counted(monkeypatch, distiller_and_dataset,
                                                         kind):
    from mmdfkd.models.synthesis import BoxConditionedGenerator, InversionLoss
    distiller, dataset = distiller_and_dataset
    if kind == 'InversionSynthesizer':
        # The second and third refinement steps: the cohort is started again twice.
        _nan_on_calls(monkeypatch, InversionLoss, '__call__', {2, 3})
        synthesizer = dict(type=kind, total_steps=2, buffer_size=2)
    else:
        # The first generator loss (no update, new noise), then the first drawn images.
        _nan_on_calls(monkeypatch, InversionLoss, '__call__', {1})
        _nan_on_calls(monkeypatch, BoxConditionedGenerator, 'forward', {3})
        synthesizer = dict(GENERATOR, steps_per_iter=1)
    hook = _hook(synthesizer)
    runner, batch, messages = _synthesize_one_batch(hook, distiller, dataset)

    assert hook.nonfinite_redraws == 2
    assert runner.message_hub.get_scalar('train/syn_nonfinite_redraws').current() == 2
    warnings = [m for m in messages if m.startswith('Synthesis: non-finite')]
    assert len(warnings) == 1 + (kind == 'InversionSynthesizer')
    assert 'The batch is drawn again from new noise (1 in a row, 1 in all)' in warnings[0]
    assert len(batch['inputs']) == 2 and batch['inputs'][0].dtype == torch.uint8
    if kind == 'InversionSynthesizer':
        synthesizer = hook.synthesizer
        assert not synthesizer.finished(synthesizer.cohort) and len(synthesizer.buffer) == 2
    else:
        assert all(torch.isfinite(p).all() for p in hook.synthesizer.network.parameters())
        assert any('drew non-finite images' in m for m in messages)


def test_persistent_non_finite_synthesis_gives_up(monkeypatch, distiller_and_dataset):
    from mmdfkd.models.synthesis import InversionLoss
    distiller, dataset = distiller_and_dataset
    _nan_on_calls(monkeypatch, InversionLoss, '__call__', set(range(1, 100)))
    hook = _hook(dict(type='InversionSynthesizer', total_steps=2, buffer_size=2),
                 max_nonfinite_redraws=2)
    with pytest.raises(RuntimeError, match=r'non-finite values 3 times in a row .*giving up\. '
                       r'Lower the synthesis learning rate \(synthesizer.lr'):
        _synthesize_one_batch(hook, distiller, dataset)
    assert hook.nonfinite_redraws == 2 and not hook.synthesizer.buffer


def test_a_synthesizer_config_without_type_is_refused():
    with pytest.raises(ValueError, match="synthesizer must be a config dict with a type, e.g. "
                       "dict\\(type='InversionSynthesizer'"):
        _hook(dict(total_steps=2))
