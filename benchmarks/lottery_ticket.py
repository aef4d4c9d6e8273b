"""Lottery tickets of the data-free demo student: bbox mAP against sparsity, with rewinding
against random re-initialization at the same masks.

    python benchmarks/lottery_ticket.py [--sparsities 0.5 0.75 0.9] [--resets rewind reinit]
                                        [--scope global|layer] [--round-iters N]
                                        [--rewind-iter K] [--seed S] [--data-root DIR]
                                        [--teacher-checkpoint PTH] [--bank DIR]
                                        [--work-dir DIR] [--out-dir DIR] [--force]

Why: a deployed student should be small. Iterative magnitude pruning with rewinding (the
lottery-ticket procedure, ``LotteryTicketHook``) zeroes most weights of the ViT blocks, neck
and head; this measures how much detection quality each step of sparsity costs when the
student only ever retrains on synthetic images, and whether the surviving weights' early
values matter (rewinding) or the mask alone does (random re-initialization).

What it measures: the demo's data-free recipe (``configs/demo/dfkd_images_mosaic_deit_tiny_
shapes.py``: the stored synthetic images of ``make demo``'s bank, half of the views mosaics, the
teacher run online on every view; no real training image) is trained with
``LotteryTicketHook`` once per reset mode (``rewind``: the kept weights go back to their values
after ``--rewind-iter`` iterations; ``reinit``: they get new random values from their initial
distribution, at the same kind of masks). A run trains ``len(sparsities) + 1`` rounds: the
first ``--round-iters`` iterations dense (the config's schedule rescaled to one round), then
after each pruning (global magnitude by default, ``--scope layer`` per tensor) the schedule
replays from ``--rewind-iter``: ``round_iters + len(sparsities) * (round_iters -
rewind_iter)`` iterations in all (3080 with the defaults, 800 and 40; 3.85 times the demo's
training). The network at the end of every round (``round_{j}.pth``, saved by the hook) is
evaluated on the real demo val split (bbox mAP and mAP50, pycocotools): sparsity 0 (the dense
round, the same training in both modes) and each target of ``--sparsities``.

Finished runs are kept in ``benchmarks/results/lottery_ticket.json``, keyed by reset mode, and
skipped when the command is run again with the same settings (data, bank, teacher checkpoint,
seed, sparsities, round length, rewind iteration, scope; the bank by the hash of its
``summary.json``, the checkpoint by the hash of its file) and the config unchanged (a hash of
the resolved config is stored with each run); ``--force`` reruns them. Writes
``lottery_ticket.json``, ``lottery_ticket.md`` (a table: a row per sparsity, a column per reset
mode, bbox mAP (mAP50) in the cells, the share of all student weights that are zero, the
training time of each run) and ``lottery_ticket.png`` (mAP against sparsity, a line per mode)
under ``benchmarks/results/``. It needs ``make demo`` to have run (its data, teacher and bank).
"""
import argparse
import json
import os
import os.path as osp
import shutil
import sys
import time
from typing import Any, Dict, Optional, Sequence

from mmengine.config import Config

import mmdfkd  # noqa: F401  (registers modules, allows mmengine checkpoints)
from mmdfkd.engine.hooks import LotteryTicketHook
from mmdfkd.engine.hooks.lottery_ticket_hook import pruned_fraction
from mmdfkd.utils import load_checkpoint_file, student_weights

# The demo machinery is not part of the installed package: it is tools/demo/ of this checkout.
sys.path.insert(0, osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'tools'))
from demo.experiment import (REPO_ROOT, config_fingerprint, evaluate,  # noqa: E402
                             experiment_config, train)
from demo.results import (add_demo_arguments, check_demo_inputs,  # noqa: E402
                          demo_input_settings, machine, measure_missing)

CONFIG = osp.join(REPO_ROOT, 'configs', 'demo', 'dfkd_images_mosaic_deit_tiny_shapes.py')
# Reset mode -> its label in the report.
RESETS = {
    'rewind': 'rewinding (lottery ticket)',
    'reinit': 'random re-initialization, same masks',
}
# The settings a kept run must share with the current command.
SETTING_KEYS = ('data_root', 'bank', 'bank_sha', 'teacher_checkpoint', 'teacher_sha', 'seed',
                'sparsities', 'round_iters', 'rewind_iter', 'scope')


def lottery_ticket_hook(reset: str, args: argparse.Namespace) -> dict:
    """The ``LotteryTicketHook`` config of a run in reset mode ``reset``."""
    return dict(type='LotteryTicketHook', sparsities=tuple(args.sparsities),
                round_iters=args.round_iters, rewind_iter=args.rewind_iter, scope=args.scope,
                reset=reset, seed=args.seed)


def total_iters(args: argparse.Namespace) -> int:
    """Training iterations of a run: the end of its last round."""
    hook = lottery_ticket_hook('rewind', args)
    hook.pop('type')
    return LotteryTicketHook(**hook).round_ends[-1]


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line (see the module docstring), its inputs checked
    (:func:`demo.results.check_demo_inputs`) and its rounds by ``LotteryTicketHook``'s own rules;
    ``round_iters`` is the config's schedule length and ``rewind_iter`` 5% of a round when
    not given."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sparsities', nargs='+', type=float, default=[0.5, 0.75, 0.9],
                        help='fraction of the selected weights pruned after each round '
                        '(cumulative, rising); sparsity 0 (the dense first round) is always '
                        'measured')
    parser.add_argument('--resets', nargs='+', choices=list(RESETS), default=list(RESETS),
                        help='what the kept weights restart from after each pruning')
    parser.add_argument('--scope', choices=['global', 'layer'], default='global',
                        help='one magnitude threshold over all selected weights, or one per '
                        'tensor')
    parser.add_argument('--round-iters', type=int, default=None,
                        help="iterations of the first round (default: the config's schedule)")
    parser.add_argument('--rewind-iter', type=int, default=None,
                        help='iteration the later rounds restart from (default: 5%% of a '
                        'round)')
    add_demo_arguments(parser, 'work_dirs/benchmarks/lottery_ticket')
    args = parser.parse_args(argv)
    args.resets = list(dict.fromkeys(args.resets))  # a mode given twice is one run
    if args.round_iters is None:
        args.round_iters = Config.fromfile(CONFIG).train_cfg.max_iters
    if args.rewind_iter is None:
        args.rewind_iter = args.round_iters // 20
    try:
        total_iters(args)
    except ValueError as error:
        parser.error(f'--sparsities, --round-iters and --rewind-iter: {error}')
    try:
        check_demo_inputs(args.teacher_checkpoint, args.data_root, args.bank)
    except FileNotFoundError as error:
        parser.error(str(error))
    return args


def run_config(reset: str, args: argparse.Namespace) -> Config:
    """The config of one run: the data-free recipe with its roots, work dir, seed and teacher
    checkpoint filled in (:func:`experiment_config`), its schedule rescaled to one round, the
    ``LotteryTicketHook`` of ``reset`` added, and as many iterations as the rounds take; one
    validation and one checkpoint at the end (the hook saves every round's network)."""
    cfg = experiment_config(CONFIG, osp.join(args.work_dir, reset), args.data_root, args.seed,
                            args.round_iters, teacher_checkpoint=args.teacher_checkpoint,
                            train_data_root=args.bank)
    cfg.custom_hooks = [*cfg.get('custom_hooks', []), lottery_ticket_hook(reset, args)]
    total = total_iters(args)
    cfg.train_cfg.max_iters = total
    cfg.train_cfg.val_interval = total
    cfg.default_hooks.checkpoint.interval = total
    return cfg


def settings_of(args: argparse.Namespace) -> Dict[str, Any]:
    """The settings of ``SETTING_KEYS`` for this command, the bank and the teacher by the hash
    of their file (a bank remade by ``make demo`` has a new ``summary.json``)."""
    return dict(demo_input_settings(args), sparsities=list(args.sparsities),
                round_iters=args.round_iters, rewind_iter=args.rewind_iter, scope=args.scope)


def sparsity_of(checkpoint: Dict[str, Any]) -> Dict[str, float]:
    """How sparse the student of a loaded ``LotteryTicketHook`` checkpoint is.

    Returns:
        dict: ``sparsity``: the fraction of the selected (prunable) weights that are pruned;
        ``zero_fraction``: the fraction of all the student's values that are zero.
    """
    state = student_weights(checkpoint)
    zeros = sum(int((value == 0).sum()) for value in state.values())
    return dict(sparsity=pruned_fraction(checkpoint['lottery_ticket']['masks']),
                zero_fraction=zeros / sum(value.numel() for value in state.values()))


def run_reset(reset: str, args: argparse.Namespace, config_sha: str) -> Dict[str, Any]:
    """Trains one run and evaluates the network of each of its rounds; returns the rounds'
    sparsities and metrics, the training time, and the date and machine it ran on."""
    cfg = run_config(reset, args)
    shutil.rmtree(cfg.work_dir, ignore_errors=True)
    start = time.time()
    train(cfg)
    train_s = round(time.time() - start, 1)
    rounds = []
    for index, target in enumerate([0., *args.sparsities]):
        checkpoint = osp.join(cfg.work_dir, f'round_{index}.pth')
        rounds.append(dict(round=index, target=target, checkpoint=checkpoint,
                           **sparsity_of(load_checkpoint_file(checkpoint)),
                           **evaluate(cfg, checkpoint)))
    return dict(reset=reset, iters=cfg.train_cfg.max_iters, train_s=train_s,
                config_sha=config_sha, date=time.strftime('%Y-%m-%d'), machine=machine(),
                rounds=rounds)


def report_table(results: Dict[str, Any]) -> str:
    """The markdown report: the settings, a table with a row per target sparsity and a column
    per reset mode of the results (cells: bbox mAP (mAP50), 'n/a' where not measured), the
    achieved sparsity and the share of zero student weights, the training time of each run,
    and what the cells are."""
    runs = results['runs']
    resets = [reset for reset in RESETS if reset in runs]
    # Kept runs may be from an earlier day or another machine than the latest ones.
    when = '; '.join(sorted({f"{run['date']}, {run['machine']}" for run in runs.values()}))
    total = runs[resets[0]]['iters'] if resets else 'n/a'
    lines = [f"{when}; rounds of {results['round_iters']} iterations (later rounds rewound to "
             f"iteration {results['rewind_iter']}), {total} iterations a run, {results['scope']}"
             f" magnitude pruning, seed {results['seed']}; synthetic bank {results['bank']}, "
             f"teacher {results['teacher_checkpoint']}, evaluated on {results['data_root']} "
             'val.', '',
             '| target sparsity | pruned (of the selected) | zero (of all student weights) | '
             + ' | '.join(RESETS[reset] for reset in resets) + ' |',
             '|---|---|---|' + '---|' * len(resets)]
    for index, target in enumerate([0., *results['sparsities']]):
        measured = [runs[reset]['rounds'][index] for reset in resets
                    if index < len(runs[reset]['rounds'])]
        cells = []
        for reset in resets:
            rounds = runs[reset]['rounds']
            cells.append('n/a' if index >= len(rounds) else
                         f"{rounds[index]['bbox_mAP']:.3f} ({rounds[index]['bbox_mAP_50']:.3f})")
        pruned = (f"{measured[0]['sparsity']:.1%}", f"{measured[0]['zero_fraction']:.1%}") \
            if measured else ('n/a', 'n/a')
        lines.append(f'| {target:.0%} | {pruned[0]} | {pruned[1]} | ' + ' | '.join(cells) + ' |')
    times = ', '.join(f"{RESETS[reset]} {runs[reset]['train_s']:.0f} s" for reset in resets)
    lines += ['', f'Training time a run (all rounds): {times or "n/a"}.', '',
              'Cells: bbox mAP (mAP50) on the real val images of the data-free student '
              f'({osp.relpath(CONFIG, REPO_ROOT)}, trained on synthetic images only) at the end '
              "of the round that trains at the row's sparsity; the 0% row is the dense first "
              'round. Pruned: the ViT blocks\' attention and MLP matrices and the neck and head '
              'convs (LotteryTicketHook defaults); the other weights (embeddings, norms, '
              "biases, the head's final convs) are never pruned. 'n/a': not measured."]
    return '\n'.join(lines) + '\n'


def plot_results(results: Dict[str, Any]):
    """The figure of lottery_ticket.png: bbox mAP against the pruned share of the selected
    weights, one line per reset mode.

    Returns:
        matplotlib.figure.Figure: One axes.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(figsize=(6.4, 4.8))
    for reset in RESETS:
        rounds = results['runs'].get(reset, {}).get('rounds', [])
        if rounds:
            axes.plot([100 * r['sparsity'] for r in rounds], [r['bbox_mAP'] for r in rounds],
                      marker='o', label=RESETS[reset])
    axes.set_xlabel('pruned weights (% of the prunable ones)')
    axes.set_ylabel('bbox mAP on demo val')
    axes.set_title('Data-free ViT student, iterative magnitude pruning')
    axes.set_xlim(0, 100)
    axes.grid(alpha=0.3)
    axes.legend()
    fig.tight_layout()
    return fig


def write_results(results: Dict[str, Any], out_dir: str) -> None:
    """Writes ``lottery_ticket.json``, ``lottery_ticket.md`` (:func:`report_table`) and
    ``lottery_ticket.png`` (:func:`plot_results`) under ``out_dir``."""
    os.makedirs(out_dir, exist_ok=True)
    with open(osp.join(out_dir, 'lottery_ticket.json'), 'w') as f:
        json.dump(results, f, indent=2)
    table = report_table(results)
    with open(osp.join(out_dir, 'lottery_ticket.md'), 'w') as f:
        f.write(table)
    print(table)
    fig = plot_results(results)
    fig.savefig(osp.join(out_dir, 'lottery_ticket.png'), dpi=120)
    import matplotlib.pyplot as plt
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    config_sha = config_fingerprint(CONFIG)
    measure_missing('lottery_ticket', osp.join(args.out_dir, 'lottery_ticket.json'),
                    settings_of(args), config_sha, 'runs', {reset: reset for reset in args.resets},
                    lambda reset: run_reset(reset, args, config_sha),
                    lambda results: write_results(results, args.out_dir), force=args.force)


if __name__ == '__main__':
    main()
