"""COCO bbox metrics of any detector function on a COCO-format split, with pycocotools.

Scores as mmdet's ``CocoMetric`` does (the metric ``tools/test.py`` reports), so the metrics of
an exported model compare with PyTorch's directly: label i is the i-th category of the
annotation file among the model's class names (in the file's order, as mmdet's ``CocoDataset``
maps them), boxes go to ``[x, y, w, h]``, every image of the file is evaluated, with
``maxDets`` (100, 300, 1000). Needs numpy and pycocotools, not torch.
"""
import contextlib
import io
import os.path as osp
from typing import Callable, Dict, List, Optional, Sequence

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from .onnx_runtime import Detections

# CocoMetric's names of COCOeval.stats[0:6].
METRIC_NAMES = ('bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75', 'bbox_mAP_s', 'bbox_mAP_m',
                'bbox_mAP_l')
# CocoMetric's default proposal_nums, which it sets as COCOeval's maxDets.
MAX_DETS = [100, 300, 1000]


def coco_metrics(detect: Callable[[str], Detections], ann_file: str, img_dir: str,
                 classes: Sequence[str], log: Optional[Callable[[str], None]] = None
                 ) -> Dict[str, float]:
    """Runs ``detect`` on every image of a COCO split and scores its detections.

    Args:
        detect: Image path -> :class:`~mmdfkd.deploy.onnx_runtime.Detections` in the
            image's pixels.
        ann_file: The split's COCO annotation file.
        img_dir: Folder the images' ``file_name`` are relative to.
        classes: The model's class names, in label order.
        log: Called with pycocotools' summary table. Defaults to None: not shown.

    Returns:
        ``bbox_mAP``, ``bbox_mAP_50``, ``bbox_mAP_75``, ``bbox_mAP_s``, ``bbox_mAP_m`` and
        ``bbox_mAP_l``, not rounded; empty if nothing was detected in any image (mmdet's
        CocoMetric then reports no metric either).

    Raises:
        ValueError: If a class name is not a category of the annotation file.
    """
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(ann_file)
    cat_ids = coco.getCatIds(catNms=list(classes))
    if len(cat_ids) != len(classes):
        names = sorted(c['name'] for c in coco.loadCats(coco.getCatIds()))
        raise ValueError(f'The model\'s classes {list(classes)} are not all categories of '
                         f'{ann_file} ({names}): evaluate it on a split of its own classes.')
    img_ids = coco.getImgIds()
    results: List[dict] = []
    for img_id in img_ids:
        found = detect(osp.join(img_dir, coco.imgs[img_id]['file_name']))
        for (x1, y1, x2, y2), score, label in zip(found.boxes.tolist(), found.scores.tolist(),
                                                  found.labels.tolist()):
            results.append(dict(image_id=img_id, bbox=[x1, y1, x2 - x1, y2 - y1],
                                score=score, category_id=cat_ids[label]))
    if not results:
        return {}
    summary = io.StringIO()
    with contextlib.redirect_stdout(summary):
        evaluation = COCOeval(coco, coco.loadRes(results), 'bbox')
        evaluation.params.catIds = cat_ids
        evaluation.params.imgIds = img_ids
        evaluation.params.maxDets = MAX_DETS
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    if log is not None:
        log(summary.getvalue())
    return {name: float(value) for name, value in zip(METRIC_NAMES, evaluation.stats)}
