"""Hook state that differs per rank, saved for every rank in rank 0's checkpoint.

mmengine writes checkpoints on rank 0 only and calls ``before_save_checkpoint`` there only. A hook
whose state differs per rank (a random stream, a buffer of synthesized images) would so save rank
0's state, and after a resume every rank would continue from it: the ranks would then draw the
same random numbers and synthesize the same images. :class:`PerRankState` gathers the state of
every rank at the end of each training iteration after which mmengine's iteration-based
``CheckpointHook`` saves (all ranks take part there), hands the list to rank 0's
``before_save_checkpoint``, and on resume gives each rank its own entry.
"""
from typing import Any, Callable, List, Optional

from mmengine.dist import all_gather_object, get_dist_info
from mmengine.hooks import CheckpointHook


def checkpoint_saved_after_this_iter(runner) -> bool:
    """Whether an iteration-based ``CheckpointHook`` of the runner saves after the current
    training iteration (the rule of ``CheckpointHook.after_train_iter``)."""
    for hook in runner.hooks:
        if isinstance(hook, CheckpointHook) and not hook.by_epoch:
            return (hook.every_n_train_iters(runner, hook.interval, hook.save_begin)
                    or (hook.save_last and hook.is_last_train_iter(runner)))
    return False


class PerRankState:
    """Collects one hook's per-rank state for checkpoints and picks a rank's on resume.

    Args:
        owner: Name of the hook, for log messages.
    """

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._gathered: Optional[List[Any]] = None
        self._gathered_at: Optional[int] = None

    def gather_if_saving(self, runner, state: Callable[[], Any]) -> None:
        """On every rank, in ``after_train_iter`` before ``CheckpointHook`` runs: if a
        checkpoint follows this iteration and there are several ranks, gathers
        ``state()`` of every rank (a collective: all ranks must call this)."""
        if get_dist_info()[1] > 1 and checkpoint_saved_after_this_iter(runner):
            self._gathered = all_gather_object(state())
            self._gathered_at = runner.iter

    def to_save(self, runner, own: Any) -> List[Any]:
        """The states to store in the checkpoint (rank 0, ``before_save_checkpoint``).

        Args:
            runner: The runner.
            own: This rank's state now.

        Returns:
            One state per rank, rank order. Only ``[own]`` when the states were not gathered
            for this iteration (a checkpoint saved by epoch or after validation); the log then
            says that the other ranks will resume from rank 0's state.
        """
        world_size = get_dist_info()[1]
        if world_size == 1:
            return [own]
        if self._gathered_at == runner.iter and self._gathered is not None:
            states, self._gathered, self._gathered_at = self._gathered, None, None
            return states
        runner.logger.warning(
            f'{self.owner}: this checkpoint holds the state of rank 0 only (states of all '
            f'{world_size} ranks are gathered only for checkpoints of an iteration-based '
            'CheckpointHook); on resume every rank continues from it.')
        return [own]

    def pick(self, runner, states: List[Any]) -> Any:
        """This rank's state from a checkpoint's list (on resume, on every rank).

        With another number of ranks than the checkpoint's, rank r takes entry
        ``r % len(states)`` and the log says so.
        """
        rank, world_size = get_dist_info()
        if len(states) != world_size:
            runner.logger.warning(
                f'{self.owner}: the checkpoint holds the state of {len(states)} rank(s), this '
                f'run has {world_size}; rank {rank} continues from the state of rank '
                f'{rank % len(states)}.')
        return states[rank % len(states)]
