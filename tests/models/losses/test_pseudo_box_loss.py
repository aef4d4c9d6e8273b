"""PseudoBoxLoss.make_targets: teacher detections to targets, fused across teachers and merged
with the batch's own targets."""
import pytest
import torch
from mmdet.structures.bbox import HorizontalBoxes
from mmengine.structures import InstanceData

from mmdfkd.models.losses import PseudoBoxLoss


def _dets(boxes, scores, labels) -> InstanceData:
    return InstanceData(bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                        scores=torch.tensor(scores, dtype=torch.float32),
                        labels=torch.tensor(labels, dtype=torch.long))


def _gt(boxes, labels) -> InstanceData:
    return InstanceData(bboxes=HorizontalBoxes(torch.tensor(boxes, dtype=torch.float32)
                                               .reshape(-1, 4)),
                        labels=torch.tensor(labels, dtype=torch.long))


TEACHER = _dets([[1, 1, 10, 10], [0, 0, 10, 20], [20, 20, 30, 30], [40, 40, 50, 50]],
                [0.9, 0.8, 0.7, 0.2], [2, 3, 4, 5])
GT = _gt([[0, 0, 10, 10]], [1])


def test_one_teacher_confident_boxes_become_targets():
    targets = PseudoBoxLoss(score_thr=0.5).make_targets([[TEACHER]], [1.0], [GT])
    assert len(targets) == 1 and set(targets[0].keys()) == {'bboxes', 'labels'}
    torch.testing.assert_close(targets[0].bboxes, TEACHER.bboxes[:3])
    assert targets[0].labels.tolist() == [2, 3, 4]


def test_keep_gt_adds_the_ground_truth_and_drops_teacher_boxes_that_duplicate_it():
    # IoU with the ground-truth box: 81 / 100 = 0.81 (dropped), 100 / 200 = 0.5 (kept: not
    # above dedup_iou_thr), 0 (kept).
    loss = PseudoBoxLoss(score_thr=0.5, keep_gt=True, dedup_iou_thr=0.5)
    target = loss.make_targets([[TEACHER]], [1.0], [GT])[0]
    torch.testing.assert_close(target.bboxes, torch.tensor(
        [[0., 0., 10., 10.], [0., 0., 10., 20.], [20., 20., 30., 30.]]))
    assert target.labels.tolist() == [1, 3, 4]
    stricter = PseudoBoxLoss(score_thr=0.5, keep_gt=True, dedup_iou_thr=0.45)
    assert stricter.make_targets([[TEACHER]], [1.0], [GT])[0].labels.tolist() == [1, 4]


def test_keep_gt_with_nothing_on_one_side():
    loss = PseudoBoxLoss(score_thr=0.95, keep_gt=True)
    only_gt = loss.make_targets([[TEACHER]], [1.0], [GT])[0]
    assert only_gt.labels.tolist() == [1]
    only_pseudo = PseudoBoxLoss(score_thr=0.5, keep_gt=True).make_targets(
        [[TEACHER]], [1.0], [_gt(torch.zeros(0, 4).tolist(), [])])[0]
    assert only_pseudo.labels.tolist() == [2, 3, 4]


def test_several_teachers_are_fused_by_their_weights_per_image():
    # Image 0: teacher 0's box (weighted score 0.9) and teacher 1's (0.6 x 2 = 1.2) overlap by
    # IoU 81 / 119 > 0.55 and fuse into their score-weighted mean. Image 1: one box each,
    # classes differ, both stay.
    first = [_dets([[0, 0, 10, 10]], [0.9], [0]), _dets([[0, 0, 5, 5]], [0.9], [1])]
    second = [_dets([[1, 1, 11, 11]], [0.6], [0]), _dets([[0, 0, 5, 5]], [0.6], [2])]
    targets = PseudoBoxLoss(score_thr=0.3).make_targets([first, second], [1.0, 2.0])
    expected = (torch.tensor([1., 1., 11., 11.]) * 1.2 + torch.tensor([0., 0., 10., 10.]) * 0.9
                ) / 2.1
    torch.testing.assert_close(targets[0].bboxes, expected[None])
    assert targets[0].labels.tolist() == [0]
    assert targets[1].labels.tolist() == [2, 1]  # by weighted score: 1.2, then 0.9


@pytest.mark.parametrize('key', ['score_thr', 'fusion_iou_thr', 'dedup_iou_thr'])
def test_thresholds_outside_zero_one_are_refused(key):
    with pytest.raises(ValueError, match=f'{key} must be in \\[0, 1\\], got 1.5'):
        PseudoBoxLoss(**{key: 1.5})
