"""LotteryTicketHook: magnitude masks (global and per layer), the parameters it selects in the
demo ViT student, rounds that prune, rewind (or re-initialize) and keep pruned weights at zero
through optimizer steps, its state in checkpoints and on resume, and the settings it refuses."""
import os.path as osp

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import Dataset

from conftest import REPO_ROOT
from mmdfkd.engine.hooks import LotteryTicketHook
from mmdfkd.engine.hooks.lottery_ticket_hook import (magnitude_masks, pruned_fraction,
                                                     pruned_module, select_parameters)
from mmdfkd.utils import load_checkpoint_file

# Rounds of the tiny runs: the first round 4 iterations, rewinding to iteration 1, so the
# rounds end after iterations 4, 7 and 10.
ROUND_ITERS, REWIND_ITER, SPARSITIES = 4, 1, (0.5, 0.75)
MAX_ITERS = 10
WEIGHTS = ('student.0.weight', 'student.2.weight')  # 32 + 16 prunable weights


class TinyDistiller(BaseModel):
    """A distiller-shaped model: a two-layer ``student`` fitted to a fixed function of its
    input."""

    def __init__(self) -> None:
        super().__init__()
        self.student = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))

    def forward(self, inputs: torch.Tensor, data_samples=None, mode: str = 'tensor'):
        out = self.student(inputs)
        return dict(loss=(out - inputs[:, :2].flip(1)).pow(2).mean()) if mode == 'loss' else out


class TinyDataset(Dataset):
    """Eight fixed random inputs of 4 values."""

    def __init__(self) -> None:
        self.inputs = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))

    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> dict:
        return dict(inputs=self.inputs[index])


class Probe(Hook):
    """Records, after LotteryTicketHook, the student's state, the learning rate, how many
    student parameters have optimizer state, and the logged sparsity."""

    priority = 85

    def __init__(self) -> None:
        self.states, self.lr, self.with_state, self.sparsity = {}, {}, {}, {}

    def _state(self, runner) -> dict:
        return {k: v.clone() for k, v in runner.model.state_dict().items()}

    def before_train(self, runner) -> None:
        self.states[runner.iter] = self._state(runner)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        done = runner.iter + 1
        optimizer = runner.optim_wrapper.optimizer
        self.states[done] = self._state(runner)
        self.lr[done] = optimizer.param_groups[0]['lr']
        self.with_state[done] = sum(p in optimizer.state for p in runner.model.student.parameters())
        self.sparsity[done] = runner.message_hub.get_scalar('train/sparsity').current()


class StopAfter(Hook):
    """Ends training after an iteration, as an interrupted run would."""

    def __init__(self, iteration: int) -> None:
        self.iteration = iteration

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if runner.iter + 1 == self.iteration:
            runner.train_loop.stop_training = True


def _runner(work_dir, name: str, hook: dict = None, max_iters: int = MAX_ITERS,
            scheduler_end: int = ROUND_ITERS, extra_hooks=(), checkpoint_interval=MAX_ITERS,
            resume_from: str = None) -> Runner:
    torch.manual_seed(0)
    hooks = [] if hook is None else [dict(
        dict(type='LotteryTicketHook', sparsities=SPARSITIES, round_iters=ROUND_ITERS,
             rewind_iter=REWIND_ITER, include=[r'weight$']), **hook)]
    return Runner(
        model=TinyDistiller(), work_dir=str(work_dir), experiment_name=name,
        train_dataloader=dict(dataset=TinyDataset(), batch_size=2, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01)),
        param_scheduler=[dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
                              end=scheduler_end)],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', by_epoch=False,
                                           interval=checkpoint_interval),
                           logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[*hooks, *extra_hooks],
        resume=resume_from is not None, load_from=resume_from,
        randomness=dict(seed=0), default_scope='mmdet')


def _masks(path: str) -> dict:
    return load_checkpoint_file(path)['lottery_ticket']['masks']


def test_global_masks_share_one_threshold_and_layer_masks_prune_every_tensor():
    weights = dict(a=torch.tensor([[0.1, -5., 3.], [0.2, 4., -0.05]]),
                   b=torch.tensor([[10., 30.], [20., 40.]]))
    dense = {name: torch.ones_like(w, dtype=torch.bool) for name, w in weights.items()}
    masks = magnitude_masks(weights, dense, 0.5, 'global')  # the 5 smallest of 10
    assert masks['a'].tolist() == [[False, True, False], [False, False, False]]
    assert masks['b'].all()
    masks = magnitude_masks(weights, dense, 0.5, 'layer')  # 3 of a, 2 of b
    assert masks['a'].tolist() == [[False, True, True], [False, True, False]]
    assert masks['b'].tolist() == [[False, True], [False, True]]
    assert pruned_fraction(masks) == 0.5
    # A weight pruned before stays pruned, however large it is now.
    earlier = dict(a=torch.tensor([[True, False, True], [True, True, True]]), b=dense['b'])
    masks = magnitude_masks(weights, earlier, 0.2, 'global')
    assert masks['a'].tolist() == [[True, False, True], [True, True, False]]
    assert pruned_fraction(masks) == 0.2


def test_default_selection_on_the_demo_student_prunes_block_matrices_and_neck_head_convs():
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    from mmdfkd.utils import load_config
    register_all_modules()
    student = MODELS.build(load_config(
        osp.join(REPO_ROOT, 'configs', 'demo', 'retinanet_deit_tiny_shapes.py')).model)
    hook = LotteryTicketHook(sparsities=(0.5, ), round_iters=10)
    selected = select_parameters(student, hook.include, hook.exclude)
    blocks = len(student.backbone.vit.blocks)
    for name in ('backbone.vit.blocks.0.attn.qkv.weight', 'backbone.vit.blocks.0.attn.proj.weight',
                 'backbone.vit.blocks.0.mlp.fc1.weight', 'backbone.vit.blocks.5.mlp.fc2.weight',
                 'neck.stages.0.2.conv.weight', 'neck.extra_convs.0.conv.weight',
                 'bbox_head.cls_convs.0.conv.weight', 'bbox_head.reg_convs.1.conv.weight'):
        assert name in selected
    for name in ('backbone.vit.pos_embed', 'backbone.vit.cls_token',
                 'backbone.vit.patch_embed.proj.weight', 'backbone.vit.blocks.0.norm1.weight',
                 'backbone.vit.blocks.0.attn.qkv.bias',
                 'backbone.vit.blocks.0.attn.log_temperature',
                 'neck.stages.0.2.gn.weight', 'bbox_head.cls_convs.0.gn.weight',
                 'bbox_head.retina_cls.weight', 'bbox_head.retina_reg.weight'):
        assert name in dict(student.named_parameters()) and name not in selected
    # 4 matrices a block, 5 neck convs (two per stage, one extra), 4 head convs.
    assert len(selected) == 4 * blocks + 5 + 4
    assert all(param.dim() >= 2 for param in selected.values())


def test_the_student_is_pruned_when_there_is_one_with_and_without_a_wrapper():
    model = TinyDistiller()
    assert pruned_module(model) == ('student.', model.student)
    assert pruned_module(nn.DataParallel(model)) == ('student.', model.student)
    assert pruned_module(model, 'student.2') == ('student.2.', model.student[2])
    plain = nn.Sequential(nn.Linear(2, 2))
    assert pruned_module(plain) == ('', plain)
    with pytest.raises(ValueError, match=r"module='teacher', but the model \(TinyDistiller\) has "
                                         r"no such submodule; its children are "
                                         r"\['data_preprocessor', 'student'\]"):
        pruned_module(model, 'teacher')


def test_rounds_prune_to_their_targets_rewind_and_keep_pruned_weights_at_zero(tmp_path):
    probe = Probe()
    _runner(tmp_path, 'rewind', dict(), extra_hooks=[probe]).train()
    states, first_end, second_end = probe.states, ROUND_ITERS, 2 * ROUND_ITERS - REWIND_ITER
    # The network of each round is saved before it is pruned further, with its masks.
    rounds = [load_checkpoint_file(str(tmp_path / f'round_{j}.pth')) for j in range(3)]
    assert [pruned_fraction(r['lottery_ticket']['masks']) for r in rounds] == [0., 0.5, 0.75]
    assert set(rounds[1]['lottery_ticket']['masks']) == set(WEIGHTS)
    assert rounds[1]['lottery_ticket']['masks'][WEIGHTS[0]].dtype == torch.bool

    first = rounds[1]['lottery_ticket']['masks']
    trained = {name: rounds[0]['state_dict'][name] for name in WEIGHTS}
    dense = {name: torch.ones_like(w, dtype=torch.bool) for name, w in trained.items()}
    assert all(torch.equal(first[n], m) for n, m in
               magnitude_masks(trained, dense, 0.5, 'global').items())
    # Rewound to iteration 1: the kept weights and everything not pruned (biases) as they
    # were then, the pruned weights zero.
    for name, value in states[first_end].items():
        expected = states[REWIND_ITER][name]
        if name in WEIGHTS:
            expected = expected * first[name]
        assert torch.equal(value, expected), name
    # Optimizer state is cleared, the learning-rate schedule replays from iteration 1.
    assert probe.with_state[first_end] == 0 and probe.with_state[first_end + 1] == 4
    assert probe.lr[first_end] == probe.lr[REWIND_ITER]
    assert probe.lr[first_end + 1] == pytest.approx(probe.lr[REWIND_ITER + 1])
    assert probe.lr[REWIND_ITER + 1] != probe.lr[REWIND_ITER]
    # Pruned weights stay zero after every optimizer step; later masks only prune more.
    second = rounds[2]['lottery_ticket']['masks']
    for done in range(first_end, MAX_ITERS + 1):
        mask = first if done < second_end else second
        for name in WEIGHTS:
            assert not states[done][name][~mask[name]].any(), (done, name)
        assert probe.sparsity[done] == (0.5 if done < second_end else 0.75)
    assert all(not (second[n] & ~first[n]).any() for n in WEIGHTS)
    # The final checkpoint holds the final masks and the rewind state.
    final = load_checkpoint_file(str(tmp_path / f'iter_{MAX_ITERS}.pth'))
    assert all(torch.equal(final['lottery_ticket']['masks'][n], second[n]) for n in WEIGHTS)
    rewind = final['lottery_ticket']['rewind']
    assert torch.equal(rewind['weights']['0.bias'], states[REWIND_ITER]['student.0.bias'])
    assert final['lottery_ticket']['module'] == 'student'


def test_reinit_draws_new_values_at_the_same_masks(tmp_path):
    rewind, reinit = Probe(), Probe()
    _runner(tmp_path / 'rewind', 'rewind_ref', dict(), extra_hooks=[rewind]).train()
    _runner(tmp_path / 'reinit', 'reinit', dict(reset='reinit'), extra_hooks=[reinit]).train()
    masks = _masks(str(tmp_path / 'reinit' / 'round_1.pth'))
    # The first round trains the same dense network, so the masks are the same.
    assert all(torch.equal(masks[n], m) for n, m in
               _masks(str(tmp_path / 'rewind' / 'round_1.pth')).items())
    end, second_end = ROUND_ITERS, 2 * ROUND_ITERS - REWIND_ITER
    second = _masks(str(tmp_path / 'reinit' / 'round_2.pth'))
    for name in WEIGHTS:
        value = reinit.states[end][name]
        assert not torch.equal(value, rewind.states[end][name])
        assert not value[~masks[name]].any()
        # New values: drawn from the tensor's own values at initialization.
        assert torch.isin(value[masks[name]], reinit.states[0][name]).all()
        # The same draw in every round: the next round keeps it at its own masks.
        assert torch.equal(reinit.states[second_end][name], value * second[name])
    for name in ('student.0.bias', 'student.2.bias'):  # not pruned: rewound as with 'rewind'
        assert torch.equal(reinit.states[end][name], rewind.states[end][name])


def test_resume_across_a_round_boundary_continues_as_the_uninterrupted_run(tmp_path):
    _runner(tmp_path / 'whole', 'whole', dict()).train()
    _runner(tmp_path / 'cut', 'cut', dict(), checkpoint_interval=5,
            extra_hooks=[StopAfter(5)]).train()
    checkpoint = str(tmp_path / 'cut' / 'iter_5.pth')
    saved = load_checkpoint_file(checkpoint)
    assert not osp.exists(tmp_path / 'cut' / 'iter_10.pth')
    for name, mask in saved['lottery_ticket']['masks'].items():
        assert not saved['state_dict'][name][~mask].any()
    # The rewind to iteration 1 after iteration 7 needs the state saved at iteration 5.
    probe = Probe()
    _runner(tmp_path / 'cut', 'resumed', dict(), resume_from=checkpoint,
            extra_hooks=[probe]).train()
    for name, mask in saved['lottery_ticket']['masks'].items():
        assert not probe.states[6][name][~mask].any()
    whole = load_checkpoint_file(str(tmp_path / 'whole' / f'iter_{MAX_ITERS}.pth'))
    resumed = load_checkpoint_file(str(tmp_path / 'cut' / f'iter_{MAX_ITERS}.pth'))
    for name in WEIGHTS:
        assert torch.equal(resumed['lottery_ticket']['masks'][name],
                           whole['lottery_ticket']['masks'][name])
    for name, value in whole['state_dict'].items():
        assert torch.allclose(resumed['state_dict'][name], value, atol=1e-6), name


def test_resuming_a_checkpoint_written_without_the_hook_is_refused(tmp_path):
    _runner(tmp_path, 'plain', None, checkpoint_interval=5, extra_hooks=[StopAfter(5)]).train()
    runner = _runner(tmp_path, 'with_hook', dict(), resume_from=str(tmp_path / 'iter_5.pth'))
    with pytest.raises(ValueError, match='resumes at iteration 5 from a checkpoint written '
                                         'without this hook'):
        runner.train()


@pytest.mark.parametrize('settings,message', [
    (dict(sparsities=(0.75, 0.5)), 'sparsities must be a non-empty list of fractions in'),
    (dict(sparsities=(0.5, 1.0)), r'strictly rising .* got \(0.5, 1.0\)'),
    (dict(sparsities=0.5), 'sparsities must be'),
    (dict(round_iters=0), 'round_iters must be a positive number'),
    (dict(rewind_iter=ROUND_ITERS), r'rewind_iter must be an iteration in \[0, round_iters=4\)'),
    (dict(scope='block'), r"scope must be one of \('global', 'layer'\), got 'block'"),
    (dict(reset='shuffle'), r"reset must be one of \('rewind', 'reinit'\)"),
    (dict(include=r'weight$'), 'include must be a list of regular expressions'),
    (dict(exclude=['(']), r"exclude pattern '\(' is not a regular expression"),
])
def test_bad_settings_are_refused_when_the_hook_is_built(settings, message):
    with pytest.raises(ValueError, match=message):
        LotteryTicketHook(**dict(dict(sparsities=SPARSITIES, round_iters=ROUND_ITERS),
                                 **settings))


@pytest.mark.parametrize('runner_settings,message', [
    (dict(max_iters=12), r'train 10 iterations .* but train_cfg.max_iters is 12. Set '
                         r'train_cfg.max_iters=10'),
    (dict(scheduler_end=8), 'LinearLR ends at iteration 8, after the first round .* set its '
                            'end to at most 4'),
    (dict(hook=dict(include=['nothing'])), "no parameter of the module 'student' matches "
                                           r"include=\['nothing'\]"),
    (dict(hook=dict(module='teacher')), "module='teacher', but the model"),
])
def test_runs_the_rounds_do_not_fit_are_refused_before_training(tmp_path, request,
                                                                runner_settings, message):
    settings = dict(dict(hook=dict()), **runner_settings)
    probe = Probe()
    runner = _runner(tmp_path, request.node.name, extra_hooks=[probe], **settings)
    with pytest.raises(ValueError, match=message):
        runner.train()
    assert not probe.lr  # not one iteration trained
