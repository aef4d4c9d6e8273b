"""benchmarks/lottery_ticket.py: the config of each run (the data-free recipe with the pruning
hook of its reset mode, schedule and length fitting the rounds), the sparsity it reads from a
checkpoint, the report and plot it writes, the runs it keeps, and what it refuses."""
import argparse
import importlib.util
import json
import os.path as osp

import pytest
import torch
from mmdet.registry import HOOKS
from mmengine.config import Config

from conftest import REPO_ROOT, fake_demo_inputs
from demo.results import kept_entries

_spec = importlib.util.spec_from_file_location(
    'lottery_ticket', osp.join(REPO_ROOT, 'benchmarks', 'lottery_ticket.py'))
lottery_ticket = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lottery_ticket)


def _args(tmp_path, **changes) -> argparse.Namespace:
    return argparse.Namespace(**dict(dict(
        work_dir=str(tmp_path / 'work'), data_root='data/demo', seed=3, round_iters=40,
        rewind_iter=2, sparsities=[0.5, 0.75], scope='layer', teacher_checkpoint='t.pth',
        bank='my/bank'), **changes))


def test_a_run_trains_the_data_free_recipe_with_the_pruning_hook_of_its_mode(tmp_path):
    cfg = lottery_ticket.run_config('reinit', _args(tmp_path))
    assert cfg.work_dir == str(tmp_path / 'work' / 'reinit')
    # Data-free: the student trains on the synthetic bank and is evaluated on real val images.
    assert cfg.train_dataloader.dataset.data_root == 'my/bank/'
    assert cfg.test_evaluator.ann_file == 'data/demo/annotations/instances_val.json'
    assert cfg.randomness.seed == 3 and cfg.model.teachers[0].checkpoint == 't.pth'
    # A 40-iteration first round, then 2 rounds replaying iterations 2..40.
    assert cfg.train_cfg.max_iters == 40 + 2 * 38
    assert cfg.train_cfg.val_interval == cfg.default_hooks.checkpoint.interval == 116
    assert all(scheduler.end <= 40 for scheduler in cfg.param_scheduler)
    hook = cfg.custom_hooks[-1]
    assert hook == dict(type='LotteryTicketHook', sparsities=(0.5, 0.75), round_iters=40,
                        rewind_iter=2, scope='layer', reset='reinit', seed=3)
    assert HOOKS.build(hook).round_ends == [40, 78, 116]
    # The recipe is the config's otherwise.
    own = Config.fromfile(lottery_ticket.CONFIG)
    assert cfg.model.distill_losses == own.model.distill_losses
    assert cfg.train_dataloader.dataset.pipeline == own.train_dataloader.dataset.pipeline


def test_sparsity_is_read_from_the_masks_and_the_student_weights():
    checkpoint = dict(
        state_dict={'student.w': torch.tensor([[0., 1.], [0., 2.]]),
                    'student.b': torch.tensor([0., 3., 4., 5.]),
                    'teacher_adapter.w': torch.zeros(100)},
        lottery_ticket=dict(masks={'student.w': torch.tensor([[False, True], [False, True]])}))
    assert lottery_ticket.sparsity_of(checkpoint) == dict(sparsity=0.5, zero_fraction=3 / 8)


def _rounds(*maps, sparsities=(0., 0.5, 0.75, 0.9)):
    return [dict(round=i, target=s, sparsity=s, zero_fraction=0.8 * s, bbox_mAP=m,
                 bbox_mAP_50=2 * m, checkpoint=f'round_{i}.pth')
            for i, (s, m) in enumerate(zip(sparsities, maps))]


def _run(reset, rounds, train_s=3000., date='2026-12-01', machine='16 CPU cores, torch 2.4'):
    return dict(reset=reset, iters=3080, train_s=train_s, config_sha='c', date=date,
                machine=machine, rounds=rounds)


def _results(**runs):
    return dict(data_root='data/demo', bank='work_dirs/demo/synthetic_bank', bank_sha='b',
                teacher_checkpoint='work_dirs/demo/teacher/iter_1500.pth', teacher_sha='t',
                seed=0, sparsities=[0.5, 0.75, 0.9], round_iters=800, rewind_iter=40,
                scope='global', runs=runs)


def test_report_has_a_row_per_sparsity_and_a_column_per_reset_mode():
    table = lottery_ticket.report_table(_results(
        reinit=_run('reinit', _rounds(0.2, 0.1, 0.05, 0.01), 3100.4, date='2026-12-02'),
        rewind=_run('rewind', _rounds(0.2, 0.19, 0.15, 0.1))))
    lines = table.splitlines()
    assert lines[0] == ('2026-12-01, 16 CPU cores, torch 2.4; 2026-12-02, 16 CPU cores, '
                        'torch 2.4; rounds of 800 iterations (later rounds rewound to iteration '
                        '40), 3080 iterations a run, global magnitude pruning, seed 0; synthetic '
                        'bank work_dirs/demo/synthetic_bank, teacher '
                        'work_dirs/demo/teacher/iter_1500.pth, evaluated on data/demo val.')
    assert lines[2:8] == [
        '| target sparsity | pruned (of the selected) | zero (of all student weights) | '
        'rewinding (lottery ticket) | random re-initialization, same masks |',
        '|---|---|---|---|---|',
        '| 0% | 0.0% | 0.0% | 0.200 (0.400) | 0.200 (0.400) |',
        '| 50% | 50.0% | 40.0% | 0.190 (0.380) | 0.100 (0.200) |',
        '| 75% | 75.0% | 60.0% | 0.150 (0.300) | 0.050 (0.100) |',
        '| 90% | 90.0% | 72.0% | 0.100 (0.200) | 0.010 (0.020) |']
    assert ('Training time a run (all rounds): rewinding (lottery ticket) 3000 s, random '
            're-initialization, same masks 3100 s.') in table
    # One mode only, and a run that measured fewer rounds.
    table = lottery_ticket.report_table(_results(rewind=_run('rewind', _rounds(0.2, 0.19))))
    assert '| 75% | n/a | n/a | n/a |' in table and 'random re-init' not in table


def test_plot_has_a_line_of_map_against_sparsity_per_reset_mode():
    fig = lottery_ticket.plot_results(_results(
        rewind=_run('rewind', _rounds(0.2, 0.19, 0.15, 0.1)),
        reinit=_run('reinit', _rounds(0.2, 0.1, 0.05, 0.01))))
    rewind, reinit = fig.axes[0].lines
    assert list(rewind.get_xdata()) == [0., 50., 75., 90.]
    assert list(rewind.get_ydata()) == [0.2, 0.19, 0.15, 0.1]
    assert list(reinit.get_ydata()) == [0.2, 0.1, 0.05, 0.01]
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == [
        'rewinding (lottery ticket)', 'random re-initialization, same masks']


def test_kept_runs_are_those_of_the_same_settings_and_config(tmp_path):
    results = _results(rewind=_run('rewind', _rounds(0.2)),
                       reinit=dict(_run('reinit', _rounds(0.2)), config_sha='old'))
    path = str(tmp_path / 'lottery_ticket.json')
    with open(path, 'w') as f:
        json.dump(results, f)
    settings = {key: results[key] for key in lottery_ticket.SETTING_KEYS}
    assert list(kept_entries(path, settings, 'c', 'runs')) == ['rewind']
    for key, other in (('sparsities', [0.5, 0.9]), ('round_iters', 400), ('rewind_iter', 0),
                       ('scope', 'layer'), ('seed', 1), ('bank_sha', 'remade'),
                       ('teacher_sha', 'retrained'), ('data_root', 'data/variant')):
        assert kept_entries(path, dict(settings, **{key: other}), 'c', 'runs') == {}
    assert kept_entries(str(tmp_path / 'none.json'), settings, 'c', 'runs') == {}


def test_a_second_command_trains_only_the_runs_not_measured_yet(tmp_path, monkeypatch):
    trained = []

    def run_reset(reset, args, config_sha):
        trained.append((reset, args.round_iters, args.rewind_iter))
        return dict(_run(reset, _rounds(0.2, 0.1, 0.05, 0.01)), config_sha=config_sha)

    monkeypatch.setattr(lottery_ticket, 'run_reset', run_reset)
    flags = fake_demo_inputs(tmp_path)
    lottery_ticket.main(flags + ['--round-iters', '8', '--rewind-iter', '1'])
    assert trained == [('rewind', 8, 1), ('reinit', 8, 1)]
    out = tmp_path / 'results'
    results = json.load(open(out / 'lottery_ticket.json'))
    assert sorted(results['runs']) == ['reinit', 'rewind']
    assert results['sparsities'] == [0.5, 0.75, 0.9] and results['scope'] == 'global'
    assert '| 90% | 90.0% | 72.0% | 0.010 (0.020) | 0.010 (0.020) |' in open(
        out / 'lottery_ticket.md').read()
    assert (out / 'lottery_ticket.png').stat().st_size > 0
    trained.clear()
    lottery_ticket.main(flags + ['--round-iters', '8', '--rewind-iter', '1'])
    assert trained == []
    lottery_ticket.main(flags + ['--round-iters', '8', '--rewind-iter', '1', '--resets',
                                 'reinit', '--force'])
    assert trained == [('reinit', 8, 1)]
    trained.clear()
    lottery_ticket.main(flags + ['--round-iters', '8', '--rewind-iter', '1', '--sparsities',
                                 '0.5', '0.8'])
    assert trained == [('rewind', 8, 1), ('reinit', 8, 1)]
    trained.clear()
    # Without --round-iters and --rewind-iter: the config's schedule, rewound to 5% of it.
    lottery_ticket.main(flags + ['--resets', 'rewind'])
    iters = Config.fromfile(lottery_ticket.CONFIG).train_cfg.max_iters
    assert trained == [('rewind', iters, iters // 20)]


def test_two_commands_running_different_modes_at_once_keep_each_others_runs(
        tmp_path, monkeypatch):
    flags = fake_demo_inputs(tmp_path) + ['--round-iters', '8', '--rewind-iter', '1']

    def run_reset(reset, args, config_sha):
        if reset == 'rewind':
            # Meanwhile, a second command measures the other mode and stores it first.
            lottery_ticket.main(flags + ['--resets', 'reinit'])
        return dict(_run(reset, _rounds(0.2, 0.1, 0.05, 0.01)), config_sha=config_sha)

    monkeypatch.setattr(lottery_ticket, 'run_reset', run_reset)
    lottery_ticket.main(flags + ['--resets', 'rewind'])
    results = json.load(open(tmp_path / 'results' / 'lottery_ticket.json'))
    assert sorted(results['runs']) == ['reinit', 'rewind']


def test_missing_demo_outputs_and_rounds_that_do_not_work_are_refused(tmp_path, capsys):
    with pytest.raises(FileNotFoundError) as error:
        lottery_ticket.check_demo_inputs(str(tmp_path / 'teacher.pth'), str(tmp_path / 'data'),
                                    str(tmp_path / 'bank'))
    message = str(error.value)
    assert (f"the teacher checkpoint {tmp_path / 'teacher.pth'} does not exist "
            '(--teacher-checkpoint)') in message
    assert (f"the summary of the synthetic bank {tmp_path / 'bank'}/summary.json does not "
            'exist (--bank)') in message
    assert 'Run `make demo` first' in message
    flags = fake_demo_inputs(tmp_path)
    (tmp_path / 'bank' / 'summary.json').unlink()
    with pytest.raises(SystemExit):
        lottery_ticket.parse_args(flags)
    err = capsys.readouterr().err
    assert 'synthetic bank' in err and 'Run `make demo` first' in err
    (tmp_path / 'bank' / 'summary.json').write_text('{}')
    with pytest.raises(SystemExit):
        lottery_ticket.parse_args(flags + ['--sparsities', '0.9', '0.5'])
    assert ('--sparsities, --round-iters and --rewind-iter: LotteryTicketHook: sparsities '
            'must be a non-empty list of fractions in (0, 1), strictly rising') in (
                capsys.readouterr().err.replace('\n', ' '))
    with pytest.raises(SystemExit):
        lottery_ticket.parse_args(flags + ['--round-iters', '8', '--rewind-iter', '8'])
    assert 'rewind_iter must be an iteration in [0, round_iters=8)' in capsys.readouterr().err
