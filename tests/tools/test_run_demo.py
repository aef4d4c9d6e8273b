"""tools/run_demo.py (what `make demo` runs): every stage end to end on a tiny dataset."""
import json
import os.path as osp

from conftest import run_tool

from demo.experiment import file_fingerprint


def test_demo_runs_every_stage_and_writes_the_summary(tmp_path):
    data_root, work_dir = str(tmp_path / 'data'), str(tmp_path / 'work')
    result = run_tool(['tools/run_demo.py', '--data-root', data_root, '--work-dir', work_dir,
                       '--num-train', '16', '--num-val', '8', '--teacher-iters', '2',
                       '--student-iters', '2', '--num-synthetic', '4',
                       '--objects-per-image', '1', '2', '--scale-range', '0.3', '0.5'])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for stage in range(1, 8):
        assert f'{stage}/7' in result.stdout  # progress is shown stage by stage
    with open(osp.join(work_dir, 'summary.json')) as f:
        summary = json.load(f)
    for model in ('teacher', 'student', 'student_real'):
        entry = summary[model]
        for key in ('bbox_mAP', 'bbox_mAP_50', 'params', 'gflops', 'latency_ms', 'train_s'):
            assert key in entry, (model, key)
        assert 0 <= entry['bbox_mAP'] <= 1 and 0 <= entry['bbox_mAP_50'] <= 1
        assert entry['params'] > 0 and entry['gflops'] > 0 and entry['latency_ms'] > 0
        assert osp.isfile(entry['checkpoint'])
        assert len(entry['config_sha']) == 16  # the quality benchmark checks rows by it
    assert summary['teacher']['checkpoint_sha'] == file_fingerprint(
        summary['teacher']['checkpoint'])
    # The demo pair compresses: fewer parameters and fewer GFLOPs than the teacher.
    assert summary['student']['params'] < summary['teacher']['params']
    assert summary['student']['gflops'] < summary['teacher']['gflops']
    assert osp.basename(summary['student']['config']) == \
        'dfkd_convstem_images_mosaic_deit_tiny_shapes.py'
    # The hybrid data-free student is measured as itself, not as the plain real-data student.
    assert summary['student']['gflops'] != summary['student_real']['gflops']
    # The data flags made the data: at most 2 objects per image, sides from 0.3 of the image.
    with open(osp.join(data_root, 'annotations', 'instances_train.json')) as f:
        train = json.load(f)
    per_image = [sum(a['image_id'] == image['id'] for a in train['annotations'])
                 for image in train['images']]
    assert max(per_image) <= 2
    assert min(max(a['bbox'][2:]) for a in train['annotations']) >= 0.3 * 128 * 0.5
    assert summary['student']['iters'] == summary['student_real']['iters'] == 2
    for stage in ('data', 'teacher_train', 'teacher_eval', 'student_real_train', 'synthesis',
                  'student_train', 'student_eval', 'model_stats'):
        assert summary['stages_s'][stage] >= 0
    assert summary['synthesis']['num_images'] == 4
    # The data-free student never read a real training image: it trained from the bank.
    bank = summary['synthesis']['path']
    assert len(json.load(open(osp.join(bank, 'targets.json')))['images']) == 4
    # After 2 iterations the teacher may score 0: the ratios then divide by 1e-9, not 0.
    student_map = summary['student']['bbox_mAP']
    assert summary['retention'] == round(
        student_map / max(summary['teacher']['bbox_mAP'], 1e-9), 3)
    assert summary['data_free_efficiency'] == round(
        student_map / max(summary['student_real']['bbox_mAP'], 1e-9), 3)
    assert 'retention' in result.stdout and 'data-free efficiency' in result.stdout
    assert osp.isfile(osp.join(work_dir, 'teacher', 'teacher_checkpoint.txt'))
