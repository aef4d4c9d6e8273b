"""Weighted box fusion: one image's detections of several detectors combined into one set."""
from typing import List, Sequence

import torch
from mmdet.structures.bbox import bbox_overlaps
from mmengine.structures import InstanceData


def weighted_box_fusion(detections: Sequence[InstanceData], weights: Sequence[float],
                        score_thr: float, iou_thr: float) -> InstanceData:
    """Fuses one image's detections of several models (weighted box fusion).

    Args:
        detections: Per model, ``InstanceData`` with ``bboxes`` (K, 4), ``scores`` and
            ``labels``.
        weights: Per model weight; a box's score counts times its model's weight.
        score_thr: Boxes scoring below this are dropped first.
        iou_thr: A box joins the first cluster of its class whose fused box it overlaps by more
            than this.

    Returns:
        ``InstanceData`` with fused ``bboxes``, ``scores`` and ``labels``. With one model the
        kept boxes are returned unchanged.
    """
    kept = [d[d.scores >= score_thr] for d in detections]
    if len(kept) == 1:
        return kept[0]
    device = detections[0].bboxes.device
    boxes = torch.cat([d.bboxes for d in kept]).float()
    scores = torch.cat([d.scores.float() * w for d, w in zip(kept, weights)])
    labels = torch.cat([d.labels for d in kept])
    total_weight = float(sum(weights))
    order = scores.argsort(descending=True).tolist()
    clusters: List[List[int]] = []
    fused_boxes: List[torch.Tensor] = []
    for index in order:
        match = -1
        for c, members in enumerate(clusters):
            if labels[members[0]] != labels[index]:
                continue
            iou = bbox_overlaps(fused_boxes[c][None], boxes[index][None])[0, 0]
            if iou > iou_thr:
                match = c
                break
        if match < 0:
            clusters.append([index])
            fused_boxes.append(boxes[index])
        else:
            clusters[match].append(index)
            member_scores = scores[clusters[match]]
            fused_boxes[match] = (boxes[clusters[match]] * member_scores[:, None]).sum(0) / \
                member_scores.sum()
    if not clusters:
        return InstanceData(bboxes=boxes.new_zeros((0, 4)), scores=scores.new_zeros(0),
                            labels=labels.new_zeros(0))
    fused_scores = torch.stack([scores[m].sum() / total_weight for m in clusters])
    return InstanceData(bboxes=torch.stack(fused_boxes).to(device), scores=fused_scores,
                        labels=torch.stack([labels[m[0]] for m in clusters]))
