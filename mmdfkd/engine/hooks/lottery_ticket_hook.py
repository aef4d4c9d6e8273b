"""Prune the student over rounds by weight magnitude, rewinding it between rounds (lottery
tickets)."""
import copy
import re
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmdet.registry import HOOKS
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapperDict
from mmengine.optim.scheduler.param_scheduler import INF
from mmengine.runner import IterBasedTrainLoop
from mmengine.utils import apply_to
from torch import nn

# Regular expressions (``re.search``) on parameter names of the pruned module. The defaults fit
# a ViT detector (TimmViT backbone, a neck, a RetinaNet-style head): the weight matrices of the
# attention and MLP layers of the ViT blocks and the conv kernels of neck and head. Not pruned:
# the patch embedding, position embedding and class token (outside the blocks), and the final
# classification and regression convs, whose every output channel is a prediction.
DEFAULT_INCLUDE = (r'^backbone\.vit\.blocks\.\d+\.(attn\.(qkv|proj)|mlp\.fc[12])\.weight$',
                   r'^(neck|bbox_head)\..*\.weight$')
DEFAULT_EXCLUDE = (r'^bbox_head\.retina_(cls|reg)\.', )
SCOPES = ('global', 'layer')
RESETS = ('rewind', 'reinit')


def pruned_module(model: nn.Module, name: Optional[str] = None) -> Tuple[str, nn.Module]:
    """The module that :class:`LotteryTicketHook` prunes, and the prefix of its names in the
    model's state dict.

    Args:
        model: The runner's model; a DDP (or other mmengine model) wrapper is unwrapped.
        name: Dotted path of the submodule, e.g. ``'student'`` or ``'student.backbone'``; None
            picks ``'student'`` when the model has one (a distiller) and the model itself
            otherwise (a plain detector).

    Returns:
        ``(prefix, module)``: prefix ``'student.'`` for ``name='student'``, ``''`` for the
        model itself.

    Raises:
        ValueError: If the model has no submodule ``name``.
    """
    if is_model_wrapper(model):
        model = model.module
    if name is None:
        name = 'student' if isinstance(getattr(model, 'student', None), nn.Module) else ''
    if not name:
        return '', model
    try:
        return name + '.', model.get_submodule(name)
    except AttributeError as exc:
        children = [child for child, _ in model.named_children()]
        raise ValueError(f'LotteryTicketHook: module={name!r}, but the model '
                         f'({type(model).__name__}) has no such submodule; its children are '
                         f'{children}. Give a dotted path of one of them, or module=None '
                         '(the student of a distiller, else the whole model).') from exc


def select_parameters(module: nn.Module, include: Sequence[str],
                      exclude: Sequence[str]) -> Dict[str, nn.Parameter]:
    """The parameters to prune: those with 2 or more dimensions (weight matrices and kernels,
    never biases or norm weights) whose name matches a pattern of ``include`` and none of
    ``exclude`` (``re.search``).

    Args:
        module: The pruned module.
        include: Regular expressions on the parameter names of ``module``.
        exclude: Regular expressions; a name matching one is not pruned.

    Returns:
        Name (relative to ``module``) -> parameter, in ``named_parameters`` order.
    """
    return {name: param for name, param in module.named_parameters()
            if param.dim() >= 2 and any(re.search(p, name) for p in include)
            and not any(re.search(p, name) for p in exclude)}


def _keep_largest(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """A bool tensor of ``scores``' shape, False at the ``round(sparsity * numel)`` smallest
    scores (ties broken by position)."""
    flat = scores.flatten()
    keep = torch.ones_like(flat, dtype=torch.bool)
    keep[flat.argsort(stable=True)[:round(sparsity * flat.numel())]] = False
    return keep.view_as(scores)


def magnitude_masks(weights: Dict[str, torch.Tensor], masks: Dict[str, torch.Tensor],
                    sparsity: float, scope: str) -> Dict[str, torch.Tensor]:
    """New masks that prune the smallest-magnitude weights, keeping pruned ones pruned.

    Args:
        weights: Name -> weight tensor (any shape).
        masks: Name -> bool tensor of the weight's shape, True where the weight is kept; the
            weights pruned there stay pruned (they count as the smallest).
        sparsity: Fraction of the weights to prune, at least the fraction ``masks`` prunes.
        scope: ``'global'``: one threshold over all weights, so layers are pruned unevenly;
            ``'layer'``: every tensor loses ``sparsity`` of its own weights.

    Returns:
        Name -> bool mask, True where the weight is kept.
    """
    scores = {name: w.detach().abs().float().masked_fill(~masks[name], -1.)
              for name, w in weights.items()}
    if scope == 'layer':
        return {name: _keep_largest(score, sparsity) for name, score in scores.items()}
    keep = _keep_largest(torch.cat([score.flatten() for score in scores.values()]), sparsity)
    return {name: part.view_as(score) for (name, score), part in
            zip(scores.items(), keep.split([score.numel() for score in scores.values()]))}


def pruned_fraction(masks: Dict[str, torch.Tensor]) -> float:
    """The fraction of the masked values that are pruned (False in their mask); 0 for no
    masks."""
    total = sum(mask.numel() for mask in masks.values())
    return sum(int((~mask).sum()) for mask in masks.values()) / total if total else 0.


@HOOKS.register_module()
class LotteryTicketHook(Hook):
    """Iterative magnitude pruning of the student with lottery-ticket rewinding.

    Training runs in rounds. The first round trains the dense network for ``round_iters``
    iterations. At the end of each round, the weights selected by ``include``/``exclude``
    (ViT block matrices, neck and head kernels by default) are pruned by magnitude to the
    round's target in ``sparsities`` (cumulative; weights pruned before stay pruned), then the
    network is reset and trains again: ``reset='rewind'`` puts back the weights it had after
    ``rewind_iter`` iterations (Frankle et al. 2020, "Linear mode connectivity and the lottery
    ticket hypothesis"), ``reset='reinit'`` is the control experiment: the pruned tensors get
    new random values at the same masks (see below). In both, the learning-rate schedule is
    rewound with the weights (weight rewinding as in Renda et al. 2020): the runner's param
    schedulers and the optimizer's hyperparameters go back to their state after
    ``rewind_iter`` iterations, so every later round replays the schedule from ``rewind_iter``
    to ``round_iters`` and trains ``round_iters - rewind_iter`` iterations. The schedule must
    therefore end by ``round_iters``, and ``train_cfg.max_iters`` must equal
    ``round_iters + len(sparsities) * (round_iters - rewind_iter)``; both are checked before
    training. The optimizer's state (e.g. Adam's moments) of the pruned module is cleared at
    every reset, as a fresh optimizer would start.

    Everything else in the pruned module (biases, norms, embeddings, the excluded layers) is
    rewound in both modes, so rewinding and re-initialization differ only in the values of the
    weights that survive pruning. Re-initialization gives each pruned tensor a random
    permutation (seeded by ``seed``, the same in every round) of its own values at iteration
    0: for the i.i.d. initializers of ViTs and detection heads (truncated normal, normal,
    uniform) this is a new draw from the tensor's initial distribution, whatever initializer
    made it, and it needs no knowledge of the model's init code. Modules of the model outside
    the pruned one (e.g. a distiller's adapters) are neither pruned nor rewound.

    Pruned weights are set to zero after every optimizer step (in ``after_train_iter``);
    gradients are left alone, so an optimizer step may move a pruned weight, but it is zero
    again before the next forward pass, a checkpoint or the next round. Hooks that read the
    weights earlier in ``after_train_iter`` (e.g. mmengine's ``EMAHook``) see that step's
    update at pruned positions.

    Masks, the rewind state and (for ``'reinit'``) the initial weights are saved in
    checkpoints as ``checkpoint['lottery_ticket']``: ``masks`` (state-dict name in the model,
    e.g. ``'student.neck.stages.0.1.conv.weight'`` -> bool tensor, True where the weight is
    kept), ``rewind`` (``weights``: the module's state dict after ``rewind_iter`` iterations;
    ``schedulers`` and ``param_groups``: the schedule's state then), ``init`` and ``module``.
    A resumed run restores them; a run that only loads the weights (``load_from``) starts
    pruning anew. ``tools/export_student.py`` folds the masks into the exported student.

    The fraction of the selected weights that are pruned is logged at every round end and
    kept as the ``train/sparsity`` scalar of the message hub (so it is in every training log
    line). With ``save_rounds``, the network at the end of each round (before it is pruned
    further) is saved as ``work_dir/round_{j}.pth`` (j = 0 for the dense network), with its
    masks but without optimizer state, through the ``CheckpointHook``'s file backend: the
    networks of sparsity 0, ``sparsities[0]``, ... for evaluation or export.

    The hook works with and without DDP (the model is unwrapped; every rank computes the same
    masks from the same weights) and with data-free training: it changes weights only, never
    the data.

    Example::

        custom_hooks = [dict(type='LotteryTicketHook', sparsities=(0.5, 0.75, 0.9),
                             round_iters=800, rewind_iter=40)]
        train_cfg = dict(max_iters=800 + 3 * (800 - 40))  # 3080

    Args:
        sparsities: Target fraction of the selected weights pruned after each round,
            strictly rising, each in (0, 1), e.g. ``(0.5, 0.75, 0.9)``: ``len(sparsities)``
            prunings, ``len(sparsities) + 1`` rounds.
        round_iters: Iterations of the first round; the param schedulers must end by then.
        rewind_iter: Iteration whose weights and schedule state the later rounds start
            from (0: the initialization), less than ``round_iters``. Defaults to 0.
        scope: ``'global'`` (one magnitude threshold over all selected weights) or
            ``'layer'`` (each tensor pruned to the target). Defaults to ``'global'``.
        reset: ``'rewind'`` or ``'reinit'`` (random re-initialization at the same masks).
            Defaults to ``'rewind'``.
        include: Regular expressions (``re.search``) on parameter names of the pruned module;
            only parameters with 2 or more dimensions are pruned. Defaults to
            ``DEFAULT_INCLUDE``.
        exclude: Regular expressions of parameters not to prune. Defaults to
            ``DEFAULT_EXCLUDE``.
        module: Dotted path of the pruned submodule; None prunes ``student`` when the model
            has one and the whole model otherwise. Defaults to None.
        seed: Seed of the re-initialization's permutations. Defaults to 0.
        save_rounds: Save the network at the end of every round. Defaults to True.
    """

    # After ParamSchedulerHook ('LOW', 70), which steps the schedule in after_train_iter, so a
    # snapshot after iteration k holds the schedule for iteration k; before CheckpointHook
    # ('VERY_LOW', 90), so checkpoints hold masked weights.
    priority = 80

    def __init__(self,
                 sparsities: Sequence[float],
                 round_iters: int,
                 rewind_iter: int = 0,
                 scope: str = 'global',
                 reset: str = 'rewind',
                 include: Sequence[str] = DEFAULT_INCLUDE,
                 exclude: Sequence[str] = DEFAULT_EXCLUDE,
                 module: Optional[str] = None,
                 seed: int = 0,
                 save_rounds: bool = True) -> None:
        if (not isinstance(sparsities, (list, tuple)) or not sparsities
                or not all(isinstance(s, (int, float)) and 0 < s < 1 for s in sparsities)
                or any(a >= b for a, b in zip(sparsities, sparsities[1:]))):
            raise ValueError('LotteryTicketHook: sparsities must be a non-empty list of '
                             'fractions in (0, 1), strictly rising (the share of the selected '
                             'weights pruned after each round, cumulative), e.g. '
                             f'(0.5, 0.75, 0.9); got {sparsities!r}.')
        if not isinstance(round_iters, int) or round_iters < 1:
            raise ValueError(f'LotteryTicketHook: round_iters must be a positive number of '
                             f'iterations, got {round_iters!r}.')
        if not isinstance(rewind_iter, int) or not 0 <= rewind_iter < round_iters:
            raise ValueError(f'LotteryTicketHook: rewind_iter must be an iteration in '
                             f'[0, round_iters={round_iters}), e.g. {round_iters // 20} (5% of '
                             f'a round); got {rewind_iter!r}.')
        if scope not in SCOPES:
            raise ValueError(f'LotteryTicketHook: scope must be one of {SCOPES}, got {scope!r}.')
        if reset not in RESETS:
            raise ValueError(f'LotteryTicketHook: reset must be one of {RESETS}, got {reset!r}.')
        for key, patterns in (('include', include), ('exclude', exclude)):
            if isinstance(patterns, str) or not all(isinstance(p, str) for p in patterns):
                raise ValueError(f'LotteryTicketHook: {key} must be a list of regular '
                                 f'expressions, e.g. [{patterns!r}], got {patterns!r}.')
            for pattern in patterns:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ValueError(f'LotteryTicketHook: {key} pattern {pattern!r} is not a '
                                     f'regular expression: {exc}.') from exc
        self.sparsities = tuple(float(s) for s in sparsities)
        self.round_iters = round_iters
        self.rewind_iter = rewind_iter
        self.scope = scope
        self.reset = reset
        self.include = tuple(include)
        self.exclude = tuple(exclude)
        self.module = module
        self.seed = seed
        self.save_rounds = save_rounds
        self._prefix = ''
        self._module: Optional[nn.Module] = None
        # State-dict name in the model -> parameter / bool mask (True: kept).
        self._params: Dict[str, nn.Parameter] = {}
        self._masks: Dict[str, torch.Tensor] = {}
        self._rewind: Optional[dict] = None
        self._init: Optional[Dict[str, torch.Tensor]] = None
        # (the checkpoint's lottery_ticket state or None, its iteration) of a loaded checkpoint.
        self._loaded: Optional[Tuple[Optional[dict], Optional[int]]] = None

    @property
    def round_ends(self) -> List[int]:
        """The iterations after which each round ends: ``round_iters``, then every
        ``round_iters - rewind_iter``; the last one is the end of training."""
        step = self.round_iters - self.rewind_iter
        return [self.round_iters + j * step for j in range(len(self.sparsities) + 1)]

    def before_train(self, runner) -> None:
        self._check_runner(runner)
        self._prefix, self._module = pruned_module(runner.model, self.module)
        params = select_parameters(self._module, self.include, self.exclude)
        if not params:
            candidates = [n for n, p in self._module.named_parameters() if p.dim() >= 2]
            raise ValueError(f'LotteryTicketHook: no parameter of {self._where()} matches '
                             f'include={list(self.include)} without matching '
                             f'exclude={list(self.exclude)} (only parameters with 2 or more '
                             f'dimensions count). Its candidates are e.g. {candidates[:6]}; '
                             'change include/exclude to select the weights to prune.')
        self._params = {self._prefix + name: param for name, param in params.items()}
        state, iteration = self._loaded or (None, None)
        self._loaded = None
        if state is not None and runner.iter == iteration:
            self._restore(state)
        elif runner.iter > 0:
            raise ValueError(f'LotteryTicketHook: training resumes at iteration {runner.iter} '
                             'from a checkpoint written without this hook, so the masks and '
                             f'the weights of rewind_iter={self.rewind_iter} are unknown. '
                             'Resume a checkpoint of a run with the hook, or start a new run '
                             'from these weights with load_from (without resume).')
        else:
            self._masks = {name: torch.ones_like(param, dtype=torch.bool)
                           for name, param in self._params.items()}
            if self.reset == 'reinit':
                self._init = {name: param.detach().cpu().clone()
                              for name, param in self._params.items()}
            if self.rewind_iter == 0:
                self._rewind = self._snapshot(runner)
        self._apply_masks()
        runner.message_hub.update_scalar('train/sparsity', pruned_fraction(self._masks))
        print_log(f'LotteryTicketHook: prunes {len(params)} tensors of {self._where()} '
                  f'({sum(p.numel() for p in params.values()) / 1e6:.2f}M weights, '
                  f'{self.scope}) to sparsities {list(self.sparsities)} at the ends of the '
                  f'rounds (iterations {self.round_ends[:-1]}), then {self.reset}s to '
                  f'iteration {self.rewind_iter}; pruned now: '
                  f'{pruned_fraction(self._masks):.1%}.', logger='current')

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._apply_masks()
        done = runner.iter + 1
        if done == self.rewind_iter:
            self._rewind = self._snapshot(runner)
        if done not in self.round_ends:
            return
        round_index = self.round_ends.index(done)
        if self.save_rounds:
            # Written as the runner's checkpoints are (e.g. the demo's atomic file backend).
            backend_args = next((hook.backend_args for hook in runner.hooks
                                 if isinstance(hook, CheckpointHook)), None)
            runner.save_checkpoint(runner.work_dir, f'round_{round_index}.pth',
                                   save_optimizer=False, save_param_scheduler=False,
                                   by_epoch=False, backend_args=backend_args)
            print_log(f'LotteryTicketHook: saved the network of round {round_index} '
                      f'({pruned_fraction(self._masks):.1%} pruned) as '
                      f'{runner.work_dir}/round_{round_index}.pth.', logger='current')
        if round_index < len(self.sparsities):
            self._prune(runner, round_index)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['lottery_ticket'] = dict(
            module=self._prefix[:-1], masks={n: m.cpu() for n, m in self._masks.items()},
            rewind=self._rewind, init=self._init)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._loaded = (checkpoint.get('lottery_ticket'), checkpoint.get('meta', {}).get('iter'))

    def _where(self) -> str:
        return f'the module {self._prefix[:-1]!r}' if self._prefix else 'the model'

    def _check_runner(self, runner) -> None:
        """Checks that the runner's schedule fits the rounds (before anything trains)."""
        if not isinstance(runner.train_loop, IterBasedTrainLoop):
            raise TypeError('LotteryTicketHook counts rounds in iterations: train with '
                            "train_cfg=dict(type='IterBasedTrainLoop', max_iters=...), not "
                            f'{type(runner.train_loop).__name__}.')
        end = self.round_ends[-1]
        if runner.max_iters != end:
            raise ValueError(
                f'LotteryTicketHook: {len(self.sparsities)} prunings with round_iters='
                f'{self.round_iters} and rewind_iter={self.rewind_iter} train {end} iterations '
                f'(the first round {self.round_iters}, every later round replays iterations '
                f'{self.rewind_iter}..{self.round_iters}), but train_cfg.max_iters is '
                f'{runner.max_iters}. Set train_cfg.max_iters={end}, or change round_iters, '
                'rewind_iter or sparsities.')
        if isinstance(runner.optim_wrapper, OptimWrapperDict):
            raise TypeError('LotteryTicketHook rewinds the state of one optimizer; this runner '
                            f'has several ({list(runner.optim_wrapper.optim_wrappers)}).')
        for scheduler in runner.param_schedulers or []:
            if not scheduler.by_epoch and self.round_iters < scheduler.end < INF:
                raise ValueError(
                    f'LotteryTicketHook: param_scheduler {type(scheduler).__name__} ends at '
                    f'iteration {scheduler.end}, after the first round (round_iters='
                    f'{self.round_iters}). Every round replays the schedule from rewind_iter to '
                    f'round_iters, so the schedule must end by then: set its end to at most '
                    f'{self.round_iters}.')

    def _snapshot(self, runner) -> dict:
        """What a reset puts back: the module's weights, the schedulers' state and the
        optimizer's hyperparameters (learning rates, momenta) now."""
        return dict(
            weights={k: v.detach().cpu().clone() for k, v in self._module.state_dict().items()},
            schedulers=[copy.deepcopy(s.state_dict()) for s in runner.param_schedulers or []],
            param_groups=[{k: copy.deepcopy(v) for k, v in group.items() if k != 'params'}
                          for group in runner.optim_wrapper.optimizer.param_groups])

    def _apply_masks(self) -> None:
        with torch.no_grad():
            for name, param in self._params.items():
                param.masked_fill_(~self._masks[name], 0.)

    def _prune(self, runner, round_index: int) -> None:
        """Prunes to the round's target, resets the module, the optimizer's state and the
        schedule, and logs the sparsity."""
        target = self.sparsities[round_index]
        self._masks = magnitude_masks(self._params, self._masks, target, self.scope)
        self._module.load_state_dict(self._rewind['weights'])
        if self.reset == 'reinit':
            generator = torch.Generator().manual_seed(self.seed)
            with torch.no_grad():
                for name in sorted(self._params):
                    init = self._init[name].flatten()
                    permuted = init[torch.randperm(init.numel(), generator=generator)]
                    self._params[name].copy_(permuted.view_as(self._params[name]))
        optimizer = runner.optim_wrapper.optimizer
        for param in self._module.parameters():
            optimizer.state.pop(param, None)
        for scheduler, state in zip(runner.param_schedulers or [], self._rewind['schedulers']):
            scheduler.load_state_dict(copy.deepcopy(state))
        for group, values in zip(optimizer.param_groups, self._rewind['param_groups']):
            group.update(copy.deepcopy(values))
        self._apply_masks()
        sparsity = pruned_fraction(self._masks)
        runner.message_hub.update_scalar('train/sparsity', sparsity)
        print_log(f'LotteryTicketHook: round {round_index} ended at iteration {runner.iter + 1}'
                  f'; pruned {sparsity:.2%} of the selected weights (target {target:.0%}, '
                  f'{self.scope}); '
                  + ('rewound to' if self.reset == 'rewind' else 're-initialized the pruned '
                     'tensors and rewound the rest to') + f' iteration {self.rewind_iter}.',
                  logger='current')

    def _restore(self, state: dict) -> None:
        """Takes the masks and reset state of a resumed checkpoint."""
        masks = state['masks']
        if (set(masks) != set(self._params)
                or any(masks[n].shape != p.shape for n, p in self._params.items())):
            differ = sorted(set(masks) ^ set(self._params)) or [
                n for n, p in self._params.items() if masks[n].shape != p.shape]
            raise ValueError(f'LotteryTicketHook: the checkpoint has masks of {len(masks)} '
                             f'tensors, this config selects {len(self._params)} (they differ '
                             f'at e.g. {differ[:4]}). Resume with the module, include and '
                             'exclude the checkpoint was trained with.')
        if self.reset == 'reinit' and state['init'] is None:
            raise ValueError("LotteryTicketHook: reset='reinit', but the checkpoint was "
                             "trained with reset='rewind' and holds no initial weights. "
                             "Resume with reset='rewind', or start a new run.")
        self._masks = {name: masks[name].to(device=param.device, dtype=torch.bool)
                       for name, param in self._params.items()}
        # A resumed checkpoint is loaded onto the training device; the reset state lives on
        # the CPU.
        self._rewind, self._init = apply_to((state['rewind'], state['init']),
                                            lambda x: isinstance(x, torch.Tensor),
                                            lambda x: x.cpu())
