"""tools/generate_synthetic.py writes images, COCO targets and teacher predictions, and reports
inversion fidelity; it never overwrites an existing output."""
import json
import os.path as osp

import cv2
from pycocotools.coco import COCO

from conftest import run_tool, save_random_teacher_checkpoint, write_tiny_dfkd_config


def test_generates_a_coco_set_with_fidelity(tiny_shapes_root, tmp_path):
    teacher_ckpt = save_random_teacher_checkpoint(str(tmp_path / 'teacher.pth'))
    config = write_tiny_dfkd_config(tiny_shapes_root, teacher_ckpt, str(tmp_path / 'dfkd.py'))
    out = str(tmp_path / 'synthetic')
    result = run_tool(['tools/generate_synthetic.py', config, '--num', '3', '--batch-size', '2',
                       '--out', out])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    targets = COCO(osp.join(out, 'targets.json'))
    assert len(targets.getImgIds()) == 3
    assert len(targets.getAnnIds()) >= 3  # at least one sampled box per image
    for image in targets.loadImgs(targets.getImgIds()):
        pixels = cv2.imread(osp.join(out, 'images', image['file_name']))
        assert pixels.shape == (image['height'], image['width'], 3) == (128, 128, 3)
    predictions = json.load(open(osp.join(out, 'teacher_predictions.json')))
    assert predictions and {'image_id', 'category_id', 'bbox', 'score'} <= set(predictions[0])
    summary = json.load(open(osp.join(out, 'summary.json')))
    assert 0 <= summary['fidelity']['bbox_mAP'] <= 1
    assert summary['bn_loss_first_step'] > 0 and summary['images_per_second'] > 0
    assert not osp.exists(out + '.partial')

    again = run_tool(['tools/generate_synthetic.py', config, '--num', '1', '--out', out])
    assert again.returncode != 0 and 'exists' in again.stderr
    assert len(COCO(osp.join(out, 'targets.json')).getImgIds()) == 3
