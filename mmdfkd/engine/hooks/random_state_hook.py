"""Save the random state in checkpoints and restore it on resume."""
import random
from typing import Optional, Tuple

import numpy as np
import torch
from mmdet.registry import HOOKS
from mmengine.hooks import Hook

from .per_rank_state import PerRankState


def get_random_state() -> dict:
    """The state of Python's, numpy's and torch's global random generators (CUDA ones too,
    where available)."""
    return dict(python=random.getstate(), numpy=np.random.get_state(),
                torch=torch.get_rng_state(),
                cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)


def set_random_state(state: dict) -> None:
    """Restores a state returned by :func:`get_random_state`."""
    random.setstate(state['python'])
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'])
    if state['cuda'] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Makes a resumed run draw the same random numbers as an uninterrupted one.

    mmengine saves no random state in checkpoints: on resume it seeds the generators again, so
    everything random after the checkpoint (drop path, dropout, data augmentation in the main
    process) differs from the run that was interrupted. This hook stores, per rank, the state of
    Python's, numpy's and torch's (CPU and CUDA) global generators in
    ``checkpoint['random_state']`` and, on resume, restores each rank's state right before the
    first iteration continues (before any other hook of that iteration). A validation run in
    between puts the state back when it ends, so validating does not change the training random
    stream either.

    ``tools/train.py`` adds this hook to every config that does not list it. Random streams of
    other hooks (e.g. :class:`ImageSynthesisHook`'s) are saved by those hooks.
    Dataloader workers draw from their own generators, which mmengine seeds the same way in both
    runs and replays when it skips the batches trained before the checkpoint.
    """

    priority = 'HIGHEST'

    def __init__(self) -> None:
        self._ranks = PerRankState(type(self).__name__)
        # (per-rank states or None, the checkpoint's iteration) of a loaded checkpoint.
        self._loaded: Optional[Tuple[Optional[list], Optional[int]]] = None
        self._state_before_val: Optional[dict] = None

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._ranks.gather_if_saving(runner, get_random_state)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['random_state'] = self._ranks.to_save(runner, get_random_state())

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._loaded = (checkpoint.get('random_state'), checkpoint.get('meta', {}).get('iter'))

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if self._loaded is None:
            return
        states, iteration = self._loaded
        self._loaded = None
        # A resumed run continues at the checkpoint's iteration; a run that only loaded the
        # weights (load_from without resume) starts at 0 and keeps its own seed.
        if runner.iter != iteration:
            return
        if states is None:
            runner.logger.warning(
                'The checkpoint holds no random state (it was written without '
                'RandomStateHook): the resumed run draws other random numbers than an '
                'uninterrupted run would.')
            return
        set_random_state(self._ranks.pick(runner, states))

    def before_val(self, runner) -> None:
        self._state_before_val = get_random_state()

    def after_val(self, runner) -> None:
        if self._state_before_val is not None:
            set_random_state(self._state_before_val)
            self._state_before_val = None
