"""benchmarks/quality.py: the report it writes, the rows it takes from `make demo`, the
synthesis figures and realism it gives the synthetic rows."""
import argparse
import importlib.util
import json
import math
import os.path as osp
import shutil

import pytest
import torch
from mmengine.config import Config

from conftest import REPO_ROOT
from demo import experiment

_spec = importlib.util.spec_from_file_location(
    'quality', osp.join(REPO_ROOT, 'benchmarks', 'quality.py'))
quality = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(quality)


def _sha(row):
    return quality._fingerprint(row)


def _demo_run(tmp_path, name, config, seed=0):
    """A demo training run's work dir: a checkpoint and the config mmengine dumps there."""
    work_dir = tmp_path / name
    work_dir.mkdir()
    (work_dir / osp.basename(config)).write_text(f'randomness = dict(seed={seed})\n')
    (work_dir / 'iter_800.pth').write_bytes(name.encode())
    return dict(config=config, checkpoint=str(work_dir / 'iter_800.pth'))


def _bank(path, synthesizer=None, **figures):
    """A bank folder with a summary.json as tools/generate_synthetic.py writes it."""
    path.mkdir(parents=True)
    summary = dict(dict(num_images=64, fidelity=dict(bbox_mAP=0.3, bbox_mAP_50=0.6),
                        images_per_second=0.5, synthesizer=synthesizer or {}), **figures)
    (path / 'summary.json').write_text(json.dumps(summary))
    return str(path)


def _demo_summary(tmp_path, iters=800, teacher_sha='abc', student_sha=None, seed=0,
                  student_row='dfkd_images'):
    """A demo summary.json (returned: its path) whose entries carry the hashes of the configs
    as they are now (``student_sha`` replaces the data-free student's), with the students'
    runs made with ``seed`` and its bank under ``tmp_path``; its data-free student was trained
    with the config of ``student_row``."""
    entry = dict(bbox_mAP=0.2, bbox_mAP_50=0.4, curve=[dict(iter=400, bbox_mAP=0.1,
                                                            bbox_mAP_50=0.2)])
    bank = _bank(tmp_path / 'synthetic_bank')
    summary = dict(teacher=dict(entry, bbox_mAP=0.4, checkpoint_sha=teacher_sha,
                                config_sha=_sha('teacher')),
                   student_real=dict(entry, iters=iters, config_sha=_sha('student_real'),
                                     **_demo_run(tmp_path, 'student_real',
                                                 '/x/retinanet_deit_tiny_shapes.py', seed)),
                   student=dict(entry, iters=iters,
                                config_sha=student_sha or _sha(student_row),
                                **_demo_run(tmp_path, 'student',
                                            '/x/' + quality.ROWS[student_row][1], seed)),
                   stages_s=dict(student_real_train=10., student_train=12., synthesis=5.),
                   data=dict(out_dir='data/demo'),
                   synthesis=dict(num_images=64, path=bank, teacher_mAP_on_synthetic=0.3))
    path = str(tmp_path / 'summary.json')
    with open(path, 'w') as f:
        json.dump(summary, f)
    return path


def test_rows_come_from_the_demo_only_when_data_seed_teacher_and_schedule_match(tmp_path):
    path = _demo_summary(tmp_path)
    rows = quality.rows_from_demo(path, 800, 'abc', 'data/demo/', 0)
    assert set(rows) == {'teacher', 'student_real', 'dfkd_images'}
    assert rows['dfkd_images']['synthesis_s'] == 5. and rows['dfkd_images']['train_s'] == 12.
    assert rows['dfkd_images']['bank'] == str(tmp_path / 'synthetic_bank')
    assert rows['dfkd_images']['bank_sha'] == quality.bank_fingerprint(str(tmp_path /
                                                                          'synthetic_bank'))
    assert rows['student_real']['checkpoint'] == str(tmp_path / 'student_real' / 'iter_800.pth')
    assert rows['student_real']['checkpoint_sha']
    assert rows['teacher']['bbox_mAP'] == 0.4 and rows['student_real']['curve']
    assert quality.rows_from_demo(path, 400, 'abc') == {}
    assert quality.rows_from_demo(path, 800, 'another teacher') == {}
    assert quality.rows_from_demo(path, 800, 'abc', 'data/demo_variant') == {}
    # Another seed: only the teacher, which is evaluated, not trained.
    assert set(quality.rows_from_demo(path, 800, 'abc', seed=1)) == {'teacher'}
    assert quality.rows_from_demo(str(tmp_path / 'none.json'), 800, 'abc') == {}


def test_the_demo_student_fills_the_row_of_its_config(tmp_path):
    rows = quality.rows_from_demo(_demo_summary(tmp_path, student_row='dfkd_images_mosaic'),
                                  800, 'abc')
    assert set(rows) == {'teacher', 'student_real', 'dfkd_images_mosaic'}
    assert rows['dfkd_images_mosaic']['train_s'] == 12.
    assert quality.row_of_config('/x/y/dfkd_images_mosaic_deit_tiny_shapes.py') == \
        'dfkd_images_mosaic'
    assert quality.row_of_config('/x/not_a_row.py') is None


def test_a_demo_bank_rewritten_since_its_summary_gets_no_fingerprint(tmp_path):
    path = _demo_summary(tmp_path)
    shutil.rmtree(tmp_path / 'synthetic_bank')  # a demo run under way made another bank
    _bank(tmp_path / 'synthetic_bank', fidelity=dict(bbox_mAP=0.25, bbox_mAP_50=0.5))
    assert 'bank_sha' not in quality.rows_from_demo(path, 800, 'abc')['dfkd_images']


def test_a_demo_row_made_with_another_config_is_not_taken(tmp_path):
    # The demo's data-free student was trained with a config that has changed since.
    path = _demo_summary(tmp_path, student_sha='0123456789abcdef')
    assert set(quality.rows_from_demo(path, 800, 'abc')) == {'teacher', 'student_real'}


def test_config_fingerprint_follows_the_resolved_config(tmp_path):
    base = tmp_path / 'base.py'
    child = tmp_path / 'child.py'
    base.write_text('a = 1\n')
    child.write_text("_base_ = './base.py'\nb = 2\n")
    first = quality.config_fingerprint(str(child))
    assert quality.config_fingerprint(str(child)) == first
    base.write_text('a = 3\n')  # a change in a base file changes the child's hash
    assert quality.config_fingerprint(str(child)) != first


def test_rows_are_of_the_kind_their_config_says():
    kinds = {name: quality.row_kind(name) for name in quality.ROWS}
    assert kinds == dict(teacher='teacher', student_real='real', student_real_kd='real',
                         student_real_kd_nogt='real', student_real_kd_convstem='real',
                         dfkd_convstem_images_mosaic='bank', dfkd_inversion='online',
                         dfkd_competition='online', dfkd_generator='online', dfkd_images='bank',
                         dfkd_bank='bank', dfkd_images_mosaic='bank',
                         dfkd_images_mosaic_photometric='bank',
                         dfkd_leaves_refined_images_mosaic='bank',
                         dfkd_augmented_images_mosaic='bank',
                         dfkd_procedural='online', dfkd_images_procedural='bank',
                         dfkd_procedural_mosaic='bank', dfkd_fourier_images_mosaic='bank',
                         teacher_rednet26='teacher', student_real_kd_rednet26='real',
                         dfkd_rednet26_images_mosaic='bank',
                         dfkd_rednet26_fourier_images_mosaic='bank',
                         dfkd_rednet26_procedural_mosaic='bank',
                         dfkd_ensemble_images_mosaic='bank', dfkd_ensemble_bank='bank',
                         dfkd_ensemble_procedural_mosaic='bank',
                         teacher_vit256='teacher', dfkd_vit256_images_mosaic='bank',
                         dfkd_vit256_psim_images_mosaic='bank',
                         dfkd_vit256_cnn_images_mosaic='bank',
                         dfkd_vit256_procedural_mosaic='bank',
                         dfkd_vit256_fourier_images_mosaic='bank')


def _results(**maps):
    """A results dict with a row of bbox mAP ``maps[name]`` (mAP50 twice that) per name."""
    rows = {name: dict(bbox_mAP=value, bbox_mAP_50=2 * value, curve=[], train_s=100.)
            for name, value in maps.items()}
    return dict(data_root='data/demo', iters=800, seed=0, date='2026-11-30',
                machine='2 CPU cores', rows=rows)


def test_report_columns_from_a_hand_made_results_dict(tmp_path):
    results = _results(teacher=0.5, student_real=0.2, student_real_kd=0.4, dfkd_bank=0.3,
                       dfkd_inversion=0.1, dfkd_generator=0.06)
    rows = results['rows']
    figures = dict(bank='work_dirs/demo/synthetic_bank', bank_sha='x', images_per_second=0.512,
                   fidelity_mAP_50=0.6661)
    rows['dfkd_bank'].update(
        synthesis_s=250., synthesis=dict(figures, teacher_forward_per_image=80,
                                         teacher_backward_per_image=60.5),
        realism=dict(fd=88.2888, reference_fd=2.9393, images=256, val_images=200))
    # The demo's bank has no teacher-pass counts: 'n/a' for them, the rest shown.
    rows['dfkd_inversion']['synthesis'] = dict(figures, teacher_forward_per_image=None,
                                               teacher_backward_per_image=None)
    quality.write_results(results, str(tmp_path))
    table = open(tmp_path / 'quality.md').read()
    assert ('| CNN teacher (RetinaNet-R18), real images | 0.500 | 1.000 | - | - | - | - | - | - '
            '| - |') in table
    # synthetic / real = 0.2 / 0.4, retention = 0.2 / 0.5; no synthesis on real images.
    assert '| ViT student, real images, no KD | 0.200 | 0.400 | 0.50 | 0.40 | - | - | - | - | ' \
           '100 s |' in table
    assert '| ViT student, real images + KD | 0.400 | 0.800 | 1.00 | 0.80 | - |' in table
    # A bank row's time is its training and its bank's synthesis.
    assert ('| ViT student, data-free (stored bank) | 0.300 | 0.600 | 0.75 | 0.60 | 80 + 60.5 | '
            '0.51 | 0.666 | 88.3 (2.9) | 350 s |') in table
    assert ('| ViT student, data-free (inversion) | 0.100 | 0.200 | 0.25 | 0.20 | n/a | 0.51 | '
            '0.666 | n/a | 100 s |') in table
    assert ('| ViT student, data-free (generator) | 0.060 | 0.120 | 0.15 | 0.12 | n/a | n/a | '
            'n/a | n/a | 100 s |') in table
    assert 'ViT student, data-free (inversion): work_dirs/demo/synthetic_bank' in table
    assert '(256 synthetic or train vs 200 val images)' in table
    assert json.load(open(tmp_path / 'quality.json'))['rows']['teacher']['bbox_mAP'] == 0.5
    assert osp.getsize(tmp_path / 'quality.png') > 1000


def test_ratios_are_not_available_without_their_reference_row():
    values = quality.report_values(_results(student_real=0.2, dfkd_bank=0.1))
    assert values['dfkd_bank'] == dict(ratio=None, retention=None)
    values = quality.report_values(_results(teacher=0.4, student_real_kd=0., dfkd_bank=0.1))
    assert values['dfkd_bank'] == dict(ratio=None, retention=pytest.approx(0.25))
    assert values['teacher'] == dict(ratio=None, retention=None)
    table = quality.report_table(_results(student_real=0.2, dfkd_bank=0.1))
    assert '| ViT student, data-free (stored bank) | 0.100 | 0.200 | n/a | n/a | n/a |' in table


def test_plot_has_the_curves_and_the_ratio_bars_with_the_target():
    results = _results(teacher=0.5, student_real=0.2, student_real_kd=0.4, dfkd_bank=0.3)
    results['rows']['student_real']['curve'] = [dict(iter=400, bbox_mAP=0.1, bbox_mAP_50=0.2)]
    fig = quality.plot_results(results)
    curves, bars = fig.axes
    assert len(curves.lines) == 2  # student_real's curve and the teacher's line
    # Bars per student row: ratios first, then retentions.
    heights = [patch.get_height() for patch in bars.patches]
    assert heights == pytest.approx([0.5, 1.0, 0.75, 0.4, 0.8, 0.6])
    assert [label.get_text() for label in bars.get_xticklabels()] == [
        'student_real', 'student_real_kd', 'dfkd_bank']
    assert any(list(line.get_ydata()) == [0.75, 0.75] for line in bars.lines)


def test_a_missing_ratio_has_no_bar():
    fig = quality.plot_results(_results(teacher=0.5, dfkd_bank=0.3))
    ratio, retention = [patch.get_height() for patch in fig.axes[1].patches]
    assert math.isnan(ratio) and retention == pytest.approx(0.6)


def test_a_tagged_run_writes_its_own_files(tmp_path):
    assert quality.results_name(None) == 'quality'
    assert quality.results_name('seed1') == 'quality_seed1'
    quality.write_results(_results(teacher=0.5), str(tmp_path), quality.results_name('seed1'))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        'quality_seed1.json', 'quality_seed1.md', 'quality_seed1.png']


def test_synthetic_rows_get_their_banks_figures(tmp_path):
    inversion = quality.synthesizer_entry(quality._config('dfkd_inversion'))
    # A bank with the same synthesizer settings for two teachers (the ensemble's) sorts first;
    # the online inversion of the demo teacher must not take its figures.
    ensemble = _bank(tmp_path / 'a_ensemble', inversion, teacher_forward_per_image=168,
                     config=osp.join(quality.DEMO, 'dfkd_ensemble_deit_tiny_shapes.py'))
    bank = _bank(tmp_path / 'bank', inversion, teacher_forward_per_image=80,
                 teacher_backward_per_image=80,
                 config=osp.join(quality.DEMO, 'dfkd_deit_tiny_shapes.py'))
    stale = _bank(tmp_path / 'stale')
    results = _results(student_real=0.2, dfkd_bank=0.3, dfkd_inversion=0.1,
                       dfkd_generator=0.1, dfkd_images=0.2, dfkd_ensemble_bank=0.1)
    rows = results['rows']
    rows['dfkd_bank'].update(bank=bank, bank_sha=quality.bank_fingerprint(bank))
    rows['dfkd_ensemble_bank'].update(bank=ensemble, bank_sha=quality.bank_fingerprint(ensemble))
    # dfkd_images's bank was made again since the row used it.
    rows['dfkd_images'].update(bank=stale, bank_sha='made before')
    quality.add_synthesis_figures(results)
    assert rows['dfkd_bank']['synthesis'] == dict(
        bank=bank, bank_sha=quality.bank_fingerprint(bank), images_per_second=0.5,
        teacher_forward_per_image=80, teacher_backward_per_image=80, fidelity_mAP_50=0.6)
    # The online inversion has the bank's synthesizer settings; the generator has not.
    assert rows['dfkd_inversion']['synthesis'] == rows['dfkd_bank']['synthesis']
    assert 'synthesis' not in rows['dfkd_generator']
    assert 'synthesis' not in rows['dfkd_images'] and 'synthesis' not in rows['student_real']


def test_realism_is_measured_with_the_real_data_students_checkpoint(tmp_path, tiny_shapes_root):
    from mmengine.runner import save_checkpoint

    from mmdfkd.utils.model_stats import build_model
    torch.manual_seed(0)
    checkpoint = str(tmp_path / 'student_real.pth')
    save_checkpoint(dict(state_dict=build_model(osp.join(
        quality.DEMO, quality.ROWS['student_real'][1])).state_dict()), checkpoint)
    # A "bank" of 4 real val images: COCO targets.json and images/.
    bank = tmp_path / 'bank'
    shutil.copytree(osp.join(tiny_shapes_root, 'val'), bank / 'images')
    val = json.load(open(osp.join(tiny_shapes_root, 'annotations', 'instances_val.json')))
    (bank / 'targets.json').write_text(json.dumps(dict(images=val['images'][:4])))
    _bank_summary = dict(num_images=4, images_per_second=1., fidelity=dict(bbox_mAP_50=0.5))
    (bank / 'summary.json').write_text(json.dumps(_bank_summary))
    results = _results(student_real=0.2, dfkd_bank=0.1, dfkd_images=0.1)
    rows = results['rows']
    rows['student_real'].update(quality.checkpoint_record(checkpoint))
    for name in ('dfkd_bank', 'dfkd_images'):
        rows[name].update(bank=str(bank), bank_sha=quality.bank_fingerprint(str(bank)))
    quality.add_synthesis_figures(results)
    args = argparse.Namespace(data_root=tiny_shapes_root, work_dir=str(tmp_path / 'work'),
                              seed=0)
    quality.add_realism(results, args)
    realism = rows['dfkd_bank']['realism']
    assert realism['images'] == realism['reference_images'] == 4 and realism['val_images'] == 8
    assert realism['fd'] > 0 and realism['reference_fd'] > 0
    assert realism['features_sha'] == rows['student_real']['checkpoint_sha']
    assert rows['dfkd_images']['realism'] == realism  # one bank, scored once
    # A checkpoint retrained since: realism is left as it is (the message says why).
    rows['dfkd_bank'].pop('realism')
    rows['student_real']['checkpoint_sha'] = 'trained again'
    quality.add_realism(results, args)
    assert 'realism' not in rows['dfkd_bank']


def test_config_fingerprint_does_not_depend_on_where_the_repository_is(tmp_path, monkeypatch):
    """The demo configs name their teacher config by an absolute path ({{fileDirname}}): a copy
    of the repository elsewhere still hashes its configs the same."""
    copy = tmp_path / 'elsewhere'
    shutil.copytree(osp.join(REPO_ROOT, 'configs'), copy / 'configs')
    name = osp.join('configs', 'demo', 'dfkd_images_deit_tiny_shapes.py')
    here = quality.config_fingerprint(osp.join(REPO_ROOT, name))
    assert REPO_ROOT in Config.fromfile(osp.join(REPO_ROOT, name)).pretty_text
    monkeypatch.setattr(experiment, 'REPO_ROOT', str(copy))  # as that copy's package sees it
    assert quality.config_fingerprint(str(copy / name)) == here


def test_a_bank_row_trains_from_a_bank_of_its_own_synthesis_settings(tmp_path, monkeypatch):
    inversion = quality.synthesizer_entry(quality._config('dfkd_inversion'))
    other = dict(inversion, lr=inversion['lr'] / 2)
    made = []

    def synthesize_bank(config, out, num, teacher_checkpoint, seed=0, teacher_config=None):
        made.append((osp.basename(config), num, seed, teacher_config))
        return dict(path=_bank(tmp_path / f'made{len(made)}', inversion, config=config))

    monkeypatch.setattr(quality, 'synthesize_bank', synthesize_bank)
    args = argparse.Namespace(work_dir=str(tmp_path / 'work'), num_synthetic=None,
                              teacher_checkpoint='teacher.pth', teacher_config=None, seed=3)
    results = _results(dfkd_bank=0.3)
    mismatched = _bank(tmp_path / 'other', other)
    results['rows']['dfkd_bank'].update(bank=mismatched, synthesis_s=1., synthetic_images=4,
                                        bank_sha=quality.bank_fingerprint(mismatched))
    # The only bank has other synthesis settings: a new one is made with the row's synthesis
    # config (dfkd_images names none: the demo's inversion).
    bank = quality.bank_for('dfkd_images', args, results)
    assert made == [('dfkd_deit_tiny_shapes.py', 256, 3, None)]
    assert bank['bank'] == str(tmp_path / 'made1') and bank['synthetic_images'] == 256
    # A bank with the row's settings is reused as it is.
    results['rows']['dfkd_images'] = dict(results['rows']['dfkd_bank'], **bank)
    assert quality.bank_for('dfkd_images_mosaic', args, results)['bank'] == bank['bank']
    assert len(made) == 1
    # The involution teacher's inversion has the same synthesizer settings, but its synthesis
    # config inverts another teacher: the CNN teacher's bank is not taken for it.
    rednet = quality.bank_for('dfkd_rednet26_images_mosaic', args, results)
    assert made[-1][0] == 'dfkd_rednet26_deit_tiny_shapes.py'
    assert rednet['bank'] == str(tmp_path / 'made2')
    # Another teacher (--teacher-config): the bank is synthesized from that teacher's model.
    args.teacher_config = 'configs/demo/retinanet_r18_frozen_bn_shapes.py'
    quality.bank_for('dfkd_images', args, _results(dfkd_bank=0.3))
    assert made[-1][3] == args.teacher_config


def test_another_teacher_is_every_distillers_teacher_and_named_in_the_report(tmp_path):
    teacher = osp.join('configs', 'demo', 'retinanet_r18_frozen_bn_shapes.py')
    cfg = experiment.experiment_config(
        osp.join(REPO_ROOT, 'configs', 'demo', 'dfkd_images_mosaic_deit_tiny_shapes.py'),
        str(tmp_path / 'run'), 'data/demo', teacher_checkpoint='frozen.pth',
        teacher_config=teacher)
    assert [(t.config, t.checkpoint) for t in cfg.model.teachers] == [
        (osp.abspath(teacher), 'frozen.pth')]
    # Without one, the config's own teacher stays.
    cfg = experiment.experiment_config(
        osp.join(REPO_ROOT, 'configs', 'demo', 'dfkd_images_mosaic_deit_tiny_shapes.py'),
        str(tmp_path / 'run'), 'data/demo')
    assert cfg.model.teachers[0].config.endswith('_base_/models/retinanet_r18_shapes.py')
    results = dict(_results(teacher=0.3), teacher_config=teacher)
    assert f'teacher {teacher};' in quality.report_table(results).splitlines()[0]
    assert 'teacher' not in quality.report_table(_results(teacher=0.3)).splitlines()[0]


def test_only_the_demo_teacher_is_replaced_in_a_two_teacher_config(tmp_path):
    ensemble = osp.join(REPO_ROOT, 'configs', 'demo',
                        'dfkd_ensemble_images_mosaic_deit_tiny_shapes.py')
    cfg = experiment.experiment_config(ensemble, str(tmp_path / 'run'), 'data/demo',
                                       teacher_checkpoint='variant.pth')
    assert [t.checkpoint for t in cfg.model.teachers] == [
        'variant.pth', quality.OTHER_TEACHERS['teacher_rednet26'][0]]
    assert experiment.demo_teacher_options(ensemble, 'variant.pth') == [
        'model.teachers.0.checkpoint=variant.pth']


def test_a_bank_of_a_teacher_that_is_not_the_demo_teachers_gets_no_empty_options(
        tmp_path, monkeypatch):
    """The ViT teacher's synthesis config has no teacher to replace: the command has no
    `--cfg-options` without a value (which argparse refuses)."""
    commands = []

    def run(cmd, check):
        commands.append(cmd)
        (tmp_path / 'bank').mkdir(exist_ok=True)
        (tmp_path / 'bank' / 'summary.json').write_text('{}')

    monkeypatch.setattr(experiment.subprocess, 'run', run)
    vit = osp.join(REPO_ROOT, 'configs', 'demo', 'dfkd_vit256_deit_tiny_shapes.py')
    experiment.synthesize_bank(vit, str(tmp_path / 'bank'), 4, 'cnn.pth')
    assert '--cfg-options' not in commands[0]
    cnn = osp.join(REPO_ROOT, 'configs', 'demo', 'dfkd_deit_tiny_shapes.py')
    experiment.synthesize_bank(cnn, str(tmp_path / 'bank'), 4, 'cnn.pth', extra_options=['a=1'])
    assert commands[1][-3:] == ['--cfg-options', 'model.teachers.0.checkpoint=cnn.pth', 'a=1']

def test_rows_that_need_an_untrained_teacher_say_what_trains_it(tmp_path, monkeypatch):
    rednet = quality.OTHER_TEACHERS['teacher_rednet26'][0]
    # Every config that distills from the involution teacher names the checkpoint its row is
    # evaluated from.
    for name in ('dfkd_rednet26_images_mosaic', 'dfkd_ensemble_images_mosaic',
                 'dfkd_ensemble_bank'):
        assert quality.other_teacher_checkpoints(name) == [rednet]
    assert quality.other_teacher_checkpoints('dfkd_images_mosaic') == []
    monkeypatch.chdir(tmp_path)  # no work_dirs/ here: the teacher is not trained
    message = quality.missing_teacher_message('dfkd_ensemble_bank')
    assert rednet in message and 'make demo-rednet-teacher' in message
    assert quality.missing_teacher_message('dfkd_images_mosaic') is None
    assert quality.other_teachers_record('teacher_rednet26') == {rednet: None}
    # Once it exists, its hash is recorded with the rows that use it.
    path = tmp_path / rednet
    path.parent.mkdir(parents=True)
    path.write_bytes(b'weights')
    assert quality.missing_teacher_message('teacher_rednet26') is None
    assert quality.other_teachers_record('dfkd_ensemble_bank') == {
        rednet: experiment.file_fingerprint(rednet)}


def test_two_teachers_give_retention_teacher_by_teacher():
    results = _results(teacher=0.4, teacher_rednet26=0.5, student_real_kd=0.4,
                       dfkd_images_mosaic=0.2, dfkd_ensemble_images_mosaic=0.3)
    lines = quality.teacher_comparison(results)
    assert lines[3] == ('| method | bbox mAP | / teacher | / teacher_rednet26 | '
                        '/ better teacher | / dfkd_images_mosaic |')
    ensemble = next(line for line in lines if line.startswith(
        f"| {quality.ROWS['dfkd_ensemble_images_mosaic'][0]} |"))
    assert ensemble.endswith('| 0.300 | 0.75 | 0.60 | 0.60 | 1.50 |')
    assert 'better teacher: ' + quality.ROWS['teacher_rednet26'][0] in lines[1]
    assert len([line for line in lines if line.startswith('| method')]) == 1  # no ViT teacher
    assert quality.report_table(results).endswith(lines[-1] + '\n')
    # Teacher rows get no ratio and no bar.
    assert 'teacher_rednet26' not in [t.get_text() for t in
                                      quality.plot_results(results).axes[1].get_xticklabels()]
    assert quality.teacher_comparison(_results(teacher=0.4, dfkd_images_mosaic=0.2)) == []


def test_the_vit_teacher_gets_its_own_table_with_the_ratio_to_the_cnn_teachers_row():
    results = _results(teacher=0.4, teacher_rednet26=0.3, teacher_vit256=0.5,
                       dfkd_images_mosaic=0.2, dfkd_vit256_images_mosaic=0.1,
                       dfkd_vit256_psim_images_mosaic=0.25)
    lines = quality.teacher_comparison(results)
    headers = [i for i, line in enumerate(lines) if line.startswith('| method')]
    assert len(headers) == 2
    vit = lines[headers[1]:]
    assert vit[0] == ('| method | bbox mAP | / teacher | / teacher_vit256 | / better teacher '
                      '| / dfkd_images_mosaic |')
    psim = next(line for line in vit if line.startswith(
        f"| {quality.ROWS['dfkd_vit256_psim_images_mosaic'][0]} |"))
    assert psim.endswith('| 0.250 | 0.62 | 0.50 | 0.50 | 1.25 |')
    # The convolution/involution table does not list the ViT rows.
    vit_rows = [quality.ROWS[name][0] for name in ('dfkd_vit256_images_mosaic',
                                                   'dfkd_vit256_psim_images_mosaic')]
    assert not any(label in line for line in lines[:headers[1]] for label in vit_rows)


def test_concurrent_runs_keep_each_others_rows(tmp_path, monkeypatch):
    """Two runs of different rows write the same results file: each write adds the valid
    rows the other wrote meanwhile instead of dropping them."""
    monkeypatch.setattr(quality, '_fingerprint', lambda name: 'sha')
    monkeypatch.setattr(quality, 'other_teachers_record', lambda name: {})
    monkeypatch.setattr(quality, 'add_realism', lambda results, args: None)
    args = argparse.Namespace(out_dir=str(tmp_path), teacher_config=None)
    path = str(tmp_path / 'quality.json')
    settings = {k: v for k, v in _results().items() if k != 'rows'}
    first, second = (dict(settings, rows={}), dict(settings, rows={}))
    first['rows']['student_real'] = dict(_results(student_real=0.1)['rows']['student_real'],
                                         config_sha='sha')
    quality.save(first, path, settings, args)
    second['rows']['dfkd_bank'] = dict(_results(dfkd_bank=0.2)['rows']['dfkd_bank'],
                                       config_sha='sha')
    quality.save(second, path, settings, args)
    with open(path) as f:
        assert set(json.load(f)['rows']) == {'student_real', 'dfkd_bank'}
    # A row this version has no entry for (a run of a newer version, with the row added,
    # wrote it meanwhile) is kept as it is, and left out of the report.
    with open(path) as f:
        stored = json.load(f)
    stored['rows']['row_added_later'] = dict(bbox_mAP=0.3, bbox_mAP_50=0.6, config_sha='new')
    with open(path, 'w') as f:
        json.dump(stored, f)
    quality.save(dict(settings, rows={}), path, settings, args)
    with open(path) as f:
        assert json.load(f)['rows']['row_added_later']['config_sha'] == 'new'
    assert 'row_added_later' not in (tmp_path / 'quality.md').read_text()
    # A row of other settings is not taken.
    quality.save(dict(settings, seed=1, rows={}), path, dict(settings, seed=1), args)
    with open(path) as f:
        assert set(json.load(f)['rows']) == set()


def test_a_teacher_variants_rows_are_kept_on_rerun(tmp_path, monkeypatch):
    """A run with --teacher-config measures each row once: the teacher row is recognized by
    the hash of that teacher's config, not the demo teacher's."""
    teacher = osp.join(REPO_ROOT, 'configs', 'demo', 'retinanet_r18_frozen_bn_shapes.py')
    (tmp_path / 'data' / 'annotations').mkdir(parents=True)
    (tmp_path / 'data' / 'annotations' / 'instances_val.json').write_text('{}')
    (tmp_path / 'frozen.pth').write_bytes(b'weights')
    ran = []

    def run_row(name, args, results):
        ran.append(name)
        assert args.teacher_config == teacher
        return dict(bbox_mAP=0.3, bbox_mAP_50=0.5, curve=[], other_teachers={},
                    config_sha=experiment.config_fingerprint(teacher))

    monkeypatch.setattr(quality, 'run_row', run_row)
    monkeypatch.setattr(quality, 'add_realism', lambda results, args: None)
    argv = ['quality.py', '--data-root', str(tmp_path / 'data'), '--teacher-checkpoint',
            str(tmp_path / 'frozen.pth'), '--teacher-config', teacher, '--tag', 'frozen',
            '--out-dir', str(tmp_path / 'out'), '--iters', '800', '--rows', 'teacher',
            '--demo-summary', str(tmp_path / 'none.json')]
    monkeypatch.setattr('sys.argv', argv)
    quality.main()
    quality.main()
    assert ran == ['teacher']
    with open(tmp_path / 'out' / 'quality_frozen.json') as f:
        assert json.load(f)['teacher_config'] == teacher


def test_a_student_variant_is_divided_by_its_own_real_image_reference():
    """The hybrid student's data-free row over the hybrid student's real-image KD row, not the
    plain student's; retention is over the teacher for every row."""
    values = quality.report_values(_results(
        teacher=0.4, student_real_kd=0.38, dfkd_images_mosaic=0.19,
        student_real_kd_convstem=0.36, dfkd_convstem_images_mosaic=0.27))
    assert values['dfkd_images_mosaic']['ratio'] == pytest.approx(0.5)
    assert values['dfkd_convstem_images_mosaic'] == dict(ratio=pytest.approx(0.75),
                                                        retention=pytest.approx(0.675))
    assert values['student_real_kd_convstem']['ratio'] == pytest.approx(1.0)
