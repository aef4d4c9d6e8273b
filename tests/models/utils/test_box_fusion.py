"""weighted_box_fusion: one model's boxes pass through; several models' boxes fuse by weight."""
import pytest
import torch
from mmengine.structures import InstanceData

from mmdfkd.models.utils import weighted_box_fusion


def _dets(boxes, scores, labels) -> InstanceData:
    return InstanceData(bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                        scores=torch.tensor(scores, dtype=torch.float32),
                        labels=torch.tensor(labels, dtype=torch.long))


def test_one_model_keeps_its_boxes_above_the_threshold_unchanged():
    dets = _dets([[0, 0, 10, 10], [5, 5, 9, 9]], [0.9, 0.2], [1, 2])
    fused = weighted_box_fusion([dets], [1.0], score_thr=0.3, iou_thr=0.55)
    torch.testing.assert_close(fused.bboxes, dets.bboxes[:1])
    torch.testing.assert_close(fused.scores, dets.scores[:1])


def test_two_models_fuse_overlapping_boxes_of_a_class_by_weighted_score():
    a = _dets([[0, 0, 10, 10], [0, 0, 10, 10]], [0.9, 0.4], [0, 2])
    b = _dets([[1, 1, 11, 11], [50, 50, 60, 60], [30, 30, 40, 40]], [0.6, 0.5, 0.1], [0, 1, 0])
    fused = weighted_box_fusion([a, b], [1.0, 2.0], score_thr=0.3, iou_thr=0.55)
    # Weighted scores: a 0.9 and 0.4, b 1.2 and 1.0 (0.1 is below score_thr). In order of
    # score: b's box starts cluster 0, b's label-1 box cluster 1, a's label-0 box overlaps
    # cluster 0 by IoU 81 / 119 = 0.68 > 0.55 and joins it, a's label-2 box is alone (its
    # class differs). Cluster 0's box is the score-weighted mean, its score the sum / 3.
    box0 = (torch.tensor([1., 1., 11., 11.]) * 1.2 + torch.tensor([0., 0., 10., 10.]) * 0.9) / 2.1
    torch.testing.assert_close(fused.bboxes, torch.stack([
        box0, torch.tensor([50., 50., 60., 60.]), torch.tensor([0., 0., 10., 10.])]))
    torch.testing.assert_close(fused.scores, torch.tensor([2.1 / 3, 1.0 / 3, 0.4 / 3]))
    assert fused.labels.tolist() == [0, 1, 2]


def test_boxes_overlapping_exactly_at_the_threshold_stay_apart():
    a = _dets([[0, 0, 10, 10]], [0.8], [0])
    b = _dets([[0, 0, 10, 20]], [0.8], [0])  # IoU 100 / 200 = 0.5
    assert len(weighted_box_fusion([a, b], [1.0, 1.0], score_thr=0.0, iou_thr=0.5)) == 2
    assert len(weighted_box_fusion([a, b], [1.0, 1.0], score_thr=0.0, iou_thr=0.49)) == 1


def test_nothing_kept_gives_empty_instances():
    a = _dets([[0, 0, 10, 10]], [0.1], [0])
    fused = weighted_box_fusion([a, a], [1.0, 1.0], score_thr=0.5, iou_thr=0.55)
    assert fused.bboxes.shape == (0, 4) and fused.scores.shape == (0,) == fused.labels.shape
    assert fused.scores.sum().item() == pytest.approx(0.0)
