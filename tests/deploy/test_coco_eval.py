"""COCO scoring of any detector function (mmdfkd/deploy/coco_eval.py): it scores as mmdet's
CocoMetric, which tools/test.py reports."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmdet.evaluation import CocoMetric

from mmdfkd.deploy import Detections, coco_metrics
from mmdfkd.deploy.coco_eval import METRIC_NAMES

CLASSES = ('rectangle', 'ellipse', 'triangle', 'cross', 'star', 'ring')


def _split(root):
    ann_file = osp.join(root, 'annotations', 'instances_val.json')
    with open(ann_file) as f:
        coco = json.load(f)
    # mmdet's CocoDataset: label i is the i-th category of the file among the class names.
    cat_ids = [c['id'] for c in coco['categories'] if c['name'] in CLASSES]
    by_file = {img['file_name']: img['id'] for img in coco['images']}
    return ann_file, osp.join(root, 'val'), coco, cat_ids, by_file


def _noisy_detections(coco, cat_ids, seed=0):
    """Per image id: the ground truth jittered, with random scores, some labels wrong, and
    false positives."""
    rng = np.random.default_rng(seed)
    found = {}
    for img in coco['images']:
        anns = [a for a in coco['annotations'] if a['image_id'] == img['id']]
        boxes = [[x, y, x + w, y + h] for x, y, w, h in (a['bbox'] for a in anns)]
        labels = [cat_ids.index(a['category_id']) for a in anns]
        for x, y, w, h in rng.uniform((0, 0, 5, 5), (100, 100, 28, 28), (3, 4)):
            boxes.append([x, y, x + w, y + h])
            labels.append(int(rng.integers(0, len(cat_ids))))
        boxes = np.array(boxes) + rng.normal(0, 2, (len(boxes), 4))
        wrong = rng.random(len(labels)) < 0.2
        labels = np.where(wrong, rng.integers(0, len(cat_ids), len(labels)), labels)
        found[img['id']] = Detections(boxes.astype(np.float32),
                                      rng.random(len(boxes)).astype(np.float32),
                                      labels.astype(np.int64))
    return found


def test_the_ground_truth_scores_one(tiny_shapes_root):
    ann_file, img_dir, coco, cat_ids, by_file = _split(tiny_shapes_root)

    def detect(path):
        anns = [a for a in coco['annotations'] if a['image_id'] == by_file[osp.basename(path)]]
        return Detections(np.array([[x, y, x + w, y + h] for x, y, w, h in
                                    (a['bbox'] for a in anns)], dtype=np.float32).reshape(-1, 4),
                          np.ones(len(anns), dtype=np.float32),
                          np.array([cat_ids.index(a['category_id']) for a in anns]))

    metrics = coco_metrics(detect, ann_file, img_dir, CLASSES)
    assert metrics['bbox_mAP'] == pytest.approx(1.0)
    assert metrics['bbox_mAP_50'] == pytest.approx(1.0)


def test_the_metrics_are_mmdets_coco_metric(tiny_shapes_root):
    ann_file, img_dir, coco, cat_ids, by_file = _split(tiny_shapes_root)
    found = _noisy_detections(coco, cat_ids)
    ours = coco_metrics(lambda path: found[by_file[osp.basename(path)]], ann_file, img_dir,
                        CLASSES)

    metric = CocoMetric(ann_file=ann_file, metric='bbox')
    metric.dataset_meta = dict(classes=CLASSES)
    for img in coco['images']:
        boxes, scores, labels = found[img['id']]
        metric.process({}, [dict(img_id=img['id'], ori_shape=(img['height'], img['width']),
                                 pred_instances=dict(bboxes=torch.from_numpy(boxes),
                                                     scores=torch.from_numpy(scores),
                                                     labels=torch.from_numpy(labels)))])
    theirs = metric.evaluate(size=len(coco['images']))
    assert 0 < ours['bbox_mAP'] < 1
    for name in METRIC_NAMES:
        assert round(ours[name], 3) == theirs[f'coco/{name}'], name


def test_a_model_that_detects_nothing_has_no_metrics(tiny_shapes_root):
    ann_file, img_dir, *_ = _split(tiny_shapes_root)
    nothing = Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                         np.zeros(0, np.int64))
    assert coco_metrics(lambda path: nothing, ann_file, img_dir, CLASSES) == {}


def test_classes_that_are_not_categories_of_the_split_are_refused(tiny_shapes_root):
    ann_file, img_dir, *_ = _split(tiny_shapes_root)
    with pytest.raises(ValueError, match="classes \\['person'\\] are not all categories"):
        coco_metrics(lambda path: None, ann_file, img_dir, ['person'])
