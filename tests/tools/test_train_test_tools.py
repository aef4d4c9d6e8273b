"""tools/train.py and tools/test.py end to end through the real mmengine Runner: an mmdet
RetinaNet from an ``mmdet::`` base config trains, is evaluated with CocoMetric, checkpoints,
resumes, and is tested from its checkpoint."""
import glob
import json
import os.path as osp
import pickle

from conftest import run_tool, save_random_teacher_checkpoint, write_tiny_teacher_config


def _scalars(work_dir: str) -> list:
    records = []
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            records.extend(json.loads(line) for line in f if line.strip())
    return records


def test_train_evaluate_resume_and_test(tiny_shapes_root, tmp_path):
    config = write_tiny_teacher_config(tiny_shapes_root, str(tmp_path / 'tiny_teacher.py'),
                                       max_iters=4, ckpt_interval=2)
    work_dir = str(tmp_path / 'work')

    first = run_tool(['tools/train.py', config, '--work-dir', work_dir])
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert osp.isfile(osp.join(work_dir, 'iter_2.pth'))
    assert osp.isfile(osp.join(work_dir, 'iter_4.pth'))
    records = _scalars(work_dir)
    train_iters = [r['iter'] for r in records if 'loss' in r]
    assert train_iters == [1, 2, 3, 4]
    assert all(r['loss'] == r['loss'] and r['loss'] < 1e4 for r in records if 'loss' in r)
    assert any('coco/bbox_mAP' in r for r in records), 'CocoMetric did not run at the end'

    # --resume without a path continues from the latest checkpoint of the work dir.
    second = run_tool(['tools/train.py', config, '--work-dir', work_dir, '--resume',
                       '--cfg-options', 'train_cfg.max_iters=6'])
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    log = second.stdout + second.stderr
    assert 'resumed epoch: 0, iter: 4' in log
    assert osp.isfile(osp.join(work_dir, 'iter_6.pth'))
    resumed_iters = [r['iter'] for r in _scalars(work_dir) if 'loss' in r]
    assert resumed_iters[-2:] == [5, 6]

    out = str(tmp_path / 'preds.pkl')
    test = run_tool(['tools/test.py', config, osp.join(work_dir, 'iter_6.pth'), '--work-dir',
                     str(tmp_path / 'test'), '--out', out])
    assert test.returncode == 0, test.stdout[-3000:] + test.stderr[-3000:]
    assert 'coco/bbox_mAP' in test.stdout + test.stderr
    with open(out, 'rb') as f:
        predictions = pickle.load(f)
    assert len(predictions) == 8  # one entry per val image
    assert {'bboxes', 'scores', 'labels'} <= set(predictions[0]['pred_instances'])


def test_resume_from_explicit_missing_checkpoint_is_a_clear_error(tiny_shapes_root, tmp_path):
    config = write_tiny_teacher_config(tiny_shapes_root, str(tmp_path / 'tiny_teacher.py'))
    result = run_tool(['tools/train.py', config, '--work-dir', str(tmp_path / 'w'), '--resume',
                       str(tmp_path / 'nope.pth')])
    assert result.returncode != 0
    assert 'nope.pth: no such checkpoint file' in result.stderr


def test_test_tool_with_missing_checkpoint_is_a_clear_error(tiny_shapes_root, tmp_path):
    config = write_tiny_teacher_config(tiny_shapes_root, str(tmp_path / 'tiny_teacher.py'))
    result = run_tool(['tools/test.py', config, str(tmp_path / 'missing.pth')])
    assert result.returncode != 0
    assert 'missing.pth' in result.stderr and 'does not exist' in result.stderr
    assert not osp.exists(osp.join(tmp_path, 'work_dirs'))


def test_test_tool_refuses_a_checkpoint_of_another_model(tiny_shapes_root, tmp_path):
    # The demo teacher's weights evaluated with a narrower head: mmengine alone would load what
    # fits, warn, and report the mAP of a half-initialized model.
    config = write_tiny_teacher_config(tiny_shapes_root, str(tmp_path / 'tiny_teacher.py'))
    checkpoint = save_random_teacher_checkpoint(str(tmp_path / 'teacher.pth'))
    result = run_tool(['tools/test.py', config, checkpoint, '--work-dir', str(tmp_path / 'w'),
                       '--cfg-options', 'model.bbox_head.feat_channels=64'])
    assert result.returncode != 0
    assert 'does not fit the model of' in result.stderr
    assert 'weights of another shape' in result.stderr
    assert 'the config it was trained with' in result.stderr
