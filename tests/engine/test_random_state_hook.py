"""RandomStateHook puts the random state of a checkpoint back when a run resumes (and only
then), validation leaves the training stream alone, and per-rank states go to their rank."""
import random

import numpy as np
import torch
from mmengine.hooks import CheckpointHook
from mmengine.logging import MMLogger

import mmdfkd.engine.hooks.per_rank_state as per_rank_state
from mmdfkd.engine.hooks import RandomStateHook
from mmdfkd.engine.hooks.per_rank_state import PerRankState, checkpoint_saved_after_this_iter


class _Runner:
    """The parts of an mmengine Runner the hook reads."""

    def __init__(self, iteration: int = 0, max_iters: int = 10) -> None:
        self.iter = iteration
        self.max_iters = max_iters
        self.hooks = [CheckpointHook(interval=2, by_epoch=False)]
        self.logger = MMLogger.get_current_instance()


def _draws() -> tuple:
    return random.random(), float(np.random.rand()), torch.rand(3)


def test_resume_restores_the_random_state_of_the_checkpoint():
    hook, runner = RandomStateHook(), _Runner(iteration=1)
    checkpoint = dict(meta=dict(iter=2))
    hook.before_save_checkpoint(runner, checkpoint)
    expected = _draws()

    torch.manual_seed(123)
    random.seed(123)
    np.random.seed(123)
    hook.after_load_checkpoint(runner, checkpoint)
    runner.iter = 2  # the resumed run continues at the checkpoint's iteration
    hook.before_train_iter(runner, 2)
    got = _draws()
    assert got[:2] == expected[:2] and torch.equal(got[2], expected[2])


def test_resuming_from_a_checkpoint_without_random_state_says_so(monkeypatch):
    hook, runner = RandomStateHook(), _Runner(iteration=2)
    warnings = []
    monkeypatch.setattr(runner.logger, 'warning', warnings.append)
    hook.after_load_checkpoint(runner, dict(meta=dict(iter=2)))
    hook.before_train_iter(runner, 2)
    assert warnings and 'holds no random state' in warnings[0]


def test_loading_weights_only_keeps_the_new_seed():
    hook, runner = RandomStateHook(), _Runner()
    checkpoint = dict(meta=dict(iter=2))
    hook.before_save_checkpoint(runner, checkpoint)
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    hook.after_load_checkpoint(runner, checkpoint)  # load_from: training starts at iter 0
    hook.before_train_iter(runner, 0)
    assert torch.equal(torch.rand(3), expected)
    hook.after_load_checkpoint(runner, dict(state_dict={}))  # no mmengine meta at all
    hook.before_train_iter(runner, 0)


def test_validation_does_not_move_the_training_random_stream():
    hook, runner = RandomStateHook(), _Runner()
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    hook.before_val(runner)
    torch.rand(100)  # e.g. a new dataloader iterator drawing its base seed
    hook.after_val(runner)
    assert torch.equal(torch.rand(3), expected)


def test_checkpoint_schedule_follows_the_checkpoint_hook():
    assert checkpoint_saved_after_this_iter(_Runner(iteration=1))  # saves after iteration 2
    assert not checkpoint_saved_after_this_iter(_Runner(iteration=2))
    assert checkpoint_saved_after_this_iter(_Runner(iteration=6, max_iters=7))  # the last one


def test_each_rank_takes_its_own_state(monkeypatch):
    runner = _Runner()
    states = PerRankState('Test')
    monkeypatch.setattr(per_rank_state, 'get_dist_info', lambda: (1, 2))
    assert states.pick(runner, ['rank0', 'rank1']) == 'rank1'
    warnings = []
    monkeypatch.setattr(runner.logger, 'warning', warnings.append)
    monkeypatch.setattr(per_rank_state, 'get_dist_info', lambda: (2, 3))
    assert states.pick(runner, ['rank0', 'rank1']) == 'rank0'
    assert warnings == ['Test: the checkpoint holds the state of 2 rank(s), this run has 3; '
                        'rank 2 continues from the state of rank 0.']
