"""benchmarks/quality.py: the report it writes and the rows it takes from `make demo`."""
import importlib.util
import json
import os.path as osp

from conftest import REPO_ROOT

_spec = importlib.util.spec_from_file_location(
    'quality', osp.join(REPO_ROOT, 'benchmarks', 'quality.py'))
quality = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(quality)


def _demo_summary(path, iters=800, checkpoint='work_dirs/demo/teacher/iter_1500.pth'):
    entry = dict(bbox_mAP=0.2, bbox_mAP_50=0.4, curve=[dict(iter=400, bbox_mAP=0.1,
                                                            bbox_mAP_50=0.2)])
    summary = dict(teacher=dict(entry, bbox_mAP=0.4, checkpoint=checkpoint),
                   student_real=dict(entry, iters=iters), student=dict(entry, iters=iters),
                   stages_s=dict(student_real_train=10., student_train=12., synthesis=5.),
                   synthesis=dict(num_images=64, path='work_dirs/demo/synthetic_bank'))
    with open(path, 'w') as f:
        json.dump(summary, f)


def test_rows_come_from_the_demo_only_when_teacher_and_schedule_match(tmp_path):
    path = str(tmp_path / 'summary.json')
    _demo_summary(path)
    rows = quality.rows_from_demo(path, 800, 'work_dirs/demo/teacher/iter_1500.pth')
    assert set(rows) == {'teacher', 'student_real', 'dfkd_images'}
    assert rows['dfkd_images']['synthesis_s'] == 5. and rows['dfkd_images']['train_s'] == 12.
    assert rows['dfkd_images']['bank'] == 'work_dirs/demo/synthetic_bank'
    assert rows['teacher']['bbox_mAP'] == 0.4 and rows['student_real']['curve']
    assert quality.rows_from_demo(path, 400, 'work_dirs/demo/teacher/iter_1500.pth') == {}
    assert quality.rows_from_demo(path, 800, 'other.pth') == {}
    assert quality.rows_from_demo(str(tmp_path / 'none.json'), 800, 'other.pth') == {}


def test_report_has_ratios_to_the_teacher_and_a_plot(tmp_path):
    path = str(tmp_path / 'summary.json')
    _demo_summary(path)
    rows = quality.rows_from_demo(path, 800, 'work_dirs/demo/teacher/iter_1500.pth')
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
