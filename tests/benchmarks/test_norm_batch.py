"""benchmarks/norm_batch.py: the config of each run (norm of the student's neck and head, batch
size), the report it writes, the runs it keeps, and what it says when `make demo` has not run."""
import argparse
import importlib.util
import json
import os.path as osp

import pytest
from mmdet.registry import MODELS
from mmengine.config import Config
from torch import nn

from conftest import REPO_ROOT, fake_demo_inputs, save_random_teacher_checkpoint
from demo.results import kept_entries

_spec = importlib.util.spec_from_file_location(
    'norm_batch', osp.join(REPO_ROOT, 'benchmarks', 'norm_batch.py'))
norm_batch = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(norm_batch)


def _norm_types(module: nn.Module) -> set:
    return {type(m) for m in module.modules()
            if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm))}


@pytest.mark.parametrize('norm,batch_size,norm_type',
                         [('BN', 2, nn.BatchNorm2d), ('GN', 8, nn.GroupNorm)])
def test_a_run_trains_the_student_with_its_norm_in_neck_and_head_at_its_batch_size(
        tmp_path, norm, batch_size, norm_type):
    teacher = save_random_teacher_checkpoint(str(tmp_path / 'teacher.pth'))
    args = argparse.Namespace(work_dir=str(tmp_path / 'work'), data_root='data/demo', seed=3,
                              iters=40, teacher_checkpoint=teacher, bank='my/bank')
    cfg = norm_batch.row_config(norm, batch_size, args)
    assert cfg.train_dataloader.batch_size == batch_size
    assert cfg.work_dir == str(tmp_path / 'work' / f'{norm}_batch{batch_size}')
    assert cfg.train_dataloader.dataset.data_root == 'my/bank/'
    assert cfg.test_evaluator.ann_file == 'data/demo/annotations/instances_val.json'
    assert cfg.train_cfg.max_iters == 40 and cfg.train_cfg.val_interval == 10
    assert cfg.randomness.seed == 3 and cfg.model.teachers[0].checkpoint == teacher
    model = MODELS.build(cfg.model)
    assert _norm_types(model.student.neck) == {norm_type}
    assert _norm_types(model.student.bbox_head) == {norm_type}
    if norm == 'GN':  # the config's own GroupNorm, untouched
        own = Config.fromfile(norm_batch.CONFIG).model.student
        assert cfg.model.student.neck.norm_cfg == own.neck.norm_cfg
        assert cfg.model.student.bbox_head.norm_cfg == own.bbox_head.norm_cfg


def _row(norm, batch_size, mAP, train_s, date='2026-12-01', machine='16 CPU cores, torch 2.4'):
    return dict(norm=norm, batch_size=batch_size, bbox_mAP=mAP, bbox_mAP_50=2 * mAP,
                train_s=train_s, date=date, machine=machine, config_sha='c', curve=[])


def _results(*rows, iters=800, seed=0):
    return dict(data_root='data/demo', bank='work_dirs/demo/synthetic_bank', bank_sha='b',
                teacher_checkpoint='work_dirs/demo/teacher/iter_1500.pth', teacher_sha='t',
                iters=iters, seed=seed,
                rows={norm_batch.row_key(r['norm'], r['batch_size']): r for r in rows})


def test_report_has_a_row_per_norm_and_a_column_per_batch_size():
    table = norm_batch.report_table(_results(
        _row('BN', 8, 0.05, 400.4), _row('GN', 2, 0.1234, 120.), _row('GN', 8, 0.2, 399.6),
        _row('BN', 2, 0.01, 130., date='2026-12-02')))
    lines = table.splitlines()
    assert lines[0] == ('2026-12-01, 16 CPU cores, torch 2.4; 2026-12-02, 16 CPU cores, '
                        'torch 2.4; 800 iterations at every batch size, seed 0; synthetic bank '
                        'work_dirs/demo/synthetic_bank, teacher '
                        'work_dirs/demo/teacher/iter_1500.pth, evaluated on data/demo val.')
    assert lines[2:6] == [
        "| student's neck + head norm | batch 2 | batch 8 | train time (batch 2 / 8) |",
        '|---|---|---|---|',
        "| GroupNorm (the config's) | 0.123 (0.247) | 0.200 (0.400) | 120 s / 400 s |",
        '| BatchNorm | 0.010 (0.020) | 0.050 (0.100) | 130 s / 400 s |']
    # A run not measured, and a batch size only one norm has.
    table = norm_batch.report_table(_results(_row('BN', 2, 0.01, 130.), _row('GN', 2, 0.1, 5.),
                                             _row('GN', 4, 0.2, 9.)))
    assert '| BatchNorm | 0.010 (0.020) | n/a | 130 s / n/a |' in table
    assert 'train time (batch 2 / 4)' in table


def test_kept_runs_are_those_of_the_same_settings_and_config(tmp_path):
    results = _results(_row('GN', 2, 0.1, 5.), dict(_row('BN', 2, 0.1, 5.), config_sha='old'))
    path = str(tmp_path / 'norm_batch.json')
    with open(path, 'w') as f:
        json.dump(results, f)
    settings = {key: results[key] for key in norm_batch.SETTING_KEYS}
    assert list(kept_entries(path, settings, 'c', 'rows')) == ['GN_batch2']
    for key, other in (('iters', 400), ('seed', 1), ('bank_sha', 'remade'),
                       ('teacher_sha', 'retrained'), ('data_root', 'data/variant')):
        assert kept_entries(path, dict(settings, **{key: other}), 'c', 'rows') == {}
    assert kept_entries(str(tmp_path / 'none.json'), settings, 'c', 'rows') == {}


def test_a_second_command_trains_only_the_runs_not_measured_yet(tmp_path, monkeypatch):
    trained = []

    def run_row(norm, batch_size, args, config_sha):
        trained.append((norm, batch_size, args.iters))
        return dict(_row(norm, batch_size, 0.1, 5.), config_sha=config_sha)

    monkeypatch.setattr(norm_batch, 'run_row', run_row)
    flags = fake_demo_inputs(tmp_path)
    norm_batch.main(flags + ['--iters', '8'])
    assert trained == [('GN', 2, 8), ('GN', 8, 8), ('BN', 2, 8), ('BN', 8, 8)]
    results = json.load(open(tmp_path / 'results' / 'norm_batch.json'))
    assert sorted(results['rows']) == ['BN_batch2', 'BN_batch8', 'GN_batch2', 'GN_batch8']
    assert results['iters'] == 8 and results['seed'] == 0
    assert '| BatchNorm | 0.100 (0.200) | 0.100 (0.200) | 5 s / 5 s |' in open(
        tmp_path / 'results' / 'norm_batch.md').read()
    trained.clear()
    norm_batch.main(flags + ['--iters', '8', '--batch-sizes', '2', '4'])
    assert trained == [('GN', 4, 8), ('BN', 4, 8)]
    trained.clear()
    norm_batch.main(flags + ['--iters', '8', '--norms', 'BN', '--force'])
    assert trained == [('BN', 2, 8), ('BN', 8, 8)]
    trained.clear()
    (tmp_path / 'teacher.pth').write_bytes(b'retrained')
    norm_batch.main(flags + ['--iters', '8', '--norms', 'GN', '--batch-sizes', '2'])
    assert trained == [('GN', 2, 8)]
    trained.clear()
    # Without --iters: the config's schedule.
    norm_batch.main(flags + ['--norms', 'GN', '--batch-sizes', '2'])
    assert trained == [('GN', 2, Config.fromfile(norm_batch.CONFIG).train_cfg.max_iters)]


def test_missing_demo_outputs_say_to_run_make_demo(tmp_path, capsys):
    with pytest.raises(FileNotFoundError) as error:
        norm_batch.check_demo_inputs(str(tmp_path / 'teacher.pth'), str(tmp_path / 'data'),
                                str(tmp_path / 'bank'))
    message = str(error.value)
    assert (f"the teacher checkpoint {tmp_path / 'teacher.pth'} does not exist "
            '(--teacher-checkpoint)') in message
    assert (f"the demo val annotations {tmp_path / 'data' / 'annotations'}/instances_val.json "
            'does not exist (--data-root)') in message
    assert (f"the summary of the synthetic bank {tmp_path / 'bank'}/summary.json does not "
            'exist (--bank)') in message
    assert 'Run `make demo` first' in message
    # The command stops before anything trains, with the same message for what is missing.
    flags = fake_demo_inputs(tmp_path)
    (tmp_path / 'bank' / 'summary.json').unlink()
    with pytest.raises(SystemExit):
        norm_batch.parse_args(flags)
    err = capsys.readouterr().err
    assert 'synthetic bank' in err and 'Run `make demo` first' in err
    assert 'teacher checkpoint' not in err
    (tmp_path / 'bank' / 'summary.json').write_text('{}')
    with pytest.raises(SystemExit):
        norm_batch.parse_args(flags + ['--batch-sizes', '0', '2'])
    assert '--batch-sizes must be 1 or more, got [0]' in capsys.readouterr().err
