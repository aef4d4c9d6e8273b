"""benchmarks/quality.py: the report it writes and the rows it takes from `make demo`."""
import importlib.util
import json
import os.path as osp
import shutil

from mmengine.config import Config

from conftest import REPO_ROOT
from demo import experiment

_spec = importlib.util.spec_from_file_location(
    'quality', osp.join(REPO_ROOT, 'benchmarks', 'quality.py'))
quality = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(quality)


def _sha(row):
    return quality.config_fingerprint(osp.join(quality.DEMO, quality.ROWS[row][1]))


def _demo_summary(path, iters=800, teacher_sha='abc', student_sha=None):
    """A demo summary.json whose entries carry the hashes of the configs as they are now
    (``student_sha`` replaces the data-free student's)."""
    entry = dict(bbox_mAP=0.2, bbox_mAP_50=0.4, curve=[dict(iter=400, bbox_mAP=0.1,
                                                            bbox_mAP_50=0.2)])
    summary = dict(teacher=dict(entry, bbox_mAP=0.4, checkpoint_sha=teacher_sha,
                                config_sha=_sha('teacher')),
                   student_real=dict(entry, iters=iters, config_sha=_sha('student_real')),
                   student=dict(entry, iters=iters,
                                config_sha=student_sha or _sha('dfkd_images')),
                   stages_s=dict(student_real_train=10., student_train=12., synthesis=5.),
                   synthesis=dict(num_images=64, path='work_dirs/demo/synthetic_bank'))
    with open(path, 'w') as f:
        json.dump(summary, f)


def test_rows_come_from_the_demo_only_when_teacher_and_schedule_match(tmp_path):
    path = str(tmp_path / 'summary.json')
    _demo_summary(path)
    rows = quality.rows_from_demo(path, 800, 'abc')
    assert set(rows) == {'teacher', 'student_real', 'dfkd_images'}
    assert rows['dfkd_images']['synthesis_s'] == 5. and rows['dfkd_images']['train_s'] == 12.
    assert rows['dfkd_images']['bank'] == 'work_dirs/demo/synthetic_bank'
    assert rows['teacher']['bbox_mAP'] == 0.4 and rows['student_real']['curve']
    assert quality.rows_from_demo(path, 400, 'abc') == {}
    assert quality.rows_from_demo(path, 800, 'another teacher') == {}
    assert quality.rows_from_demo(str(tmp_path / 'none.json'), 800, 'abc') == {}


def test_a_demo_row_made_with_another_config_is_not_taken(tmp_path):
    # The demo's data-free student was trained with a config that has changed since.
    path = str(tmp_path / 'summary.json')
    _demo_summary(path, student_sha='0123456789abcdef')
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


def test_report_has_ratios_to_the_teacher_and_a_plot(tmp_path):
    path = str(tmp_path / 'summary.json')
    _demo_summary(path)
    rows = quality.rows_from_demo(path, 800, 'abc')
    results = dict(data_root='data/demo', iters=800, date='2026-11-22', machine='2 CPU cores',
                   rows=rows)
    quality.write_results(results, str(tmp_path))
    table = open(tmp_path / 'quality.md').read()
    # 0.2 / 0.4 for both students; the bank row's time is synthesis + training.
    assert '| ViT student, real images, no KD | 0.200 | 0.400 | 0.50 | 10 s |' in table
    assert ('| ViT student, data-free (stored images, teacher online) | 0.200 | 0.400 | 0.50 | '
            '17 s |') in table
    assert json.load(open(tmp_path / 'quality.json'))['rows']['teacher']['bbox_mAP'] == 0.4
    assert osp.getsize(tmp_path / 'quality.png') > 1000


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
