"""tools/train.py and tools/test.py on the COCO recipe without its files: they exit non-zero
before building anything, with one line per missing thing (path, where to get it, the option to
change) at the end of stderr and no traceback."""
import os.path as osp

from conftest import REPO_ROOT, run_tool

CONFIG = osp.join(REPO_ROOT, 'configs', 'dfkd_vit_det.py')
CKPT = 'checkpoints/retinanet_r50_fpn_1x_coco_20200130-c2398f9e.pth'
CKPT_URL = ('https://download.openmmlab.com/mmdetection/v2.0/retinanet/retinanet_r50_fpn_1x_coco/'
            'retinanet_r50_fpn_1x_coco_20200130-c2398f9e.pth')
COCO_URLS = ('http://images.cocodataset.org/zips/val2017.zip',
             'http://images.cocodataset.org/annotations/annotations_trainval2017.zip')


def test_train_without_teacher_checkpoint_and_coco_val(tmp_path):
    # Run from an empty directory, as a user who has downloaded nothing.
    result = run_tool([osp.join(REPO_ROOT, 'tools', 'train.py'), CONFIG], cwd=str(tmp_path))
    assert result.returncode != 0
    assert 'Traceback' not in result.stderr
    *_, teacher_line, data_line = result.stderr.strip().splitlines()
    assert teacher_line.startswith(f'Teacher checkpoint {CKPT!r} does not exist')
    assert CKPT_URL in teacher_line
    assert '--cfg-options model.teachers.0.checkpoint=PATH' in teacher_line
    assert data_line.startswith('val_dataloader needs files that do not exist')
    assert 'data/coco/annotations/instances_val2017.json' in data_line
    assert 'data/coco/val2017/' in data_line
    assert all(url in data_line for url in COCO_URLS)
    assert 'val_dataloader.dataset.data_root=DIR/' in data_line
    assert 'val_evaluator.ann_file=DIR/annotations/instances_val2017.json' in data_line
    assert not osp.exists(tmp_path / 'work_dirs')  # nothing was built


def test_test_tool_without_coco_val(tmp_path):
    """The distiller's student is evaluated alone, so neither the teacher checkpoint nor the
    student's full weights are needed to get to the data check: only a loadable checkpoint."""
    import torch
    student = tmp_path / 'iter_90000.pth'
    torch.save({'state_dict': {'student.backbone.weight': torch.zeros(1)}}, student)
    result = run_tool([osp.join(REPO_ROOT, 'tools', 'test.py'), CONFIG, str(student)],
                      cwd=str(tmp_path))
    assert result.returncode != 0
    assert 'Traceback' not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith('test_dataloader needs files that do not exist')
    assert 'Teacher checkpoint' not in result.stderr
    assert all(url in last for url in COCO_URLS)
    assert 'test_dataloader.dataset.data_root=DIR/' in last
    assert 'test_evaluator.ann_file=DIR/annotations/instances_val2017.json' in last
