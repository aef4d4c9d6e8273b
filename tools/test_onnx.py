"""Evaluate an exported ONNX detector on a COCO split, optionally against PyTorch.

    python tools/test_onnx.py MODEL.onnx --ann-file ANN.json --img-dir IMAGES/ \\
        [--pytorch CONFIG CHECKPOINT] [--threads N] [--work-dir DIR]

The ONNX model runs on onnxruntime through ``mmdfkd.deploy.OnnxDetectorRunner`` (each image
loaded and resized as the test pipeline does, decoding and NMS in the graph) and is scored with
pycocotools as mmdet's ``CocoMetric`` scores (``mmdfkd.deploy.coco_metrics``). With
``--pytorch`` the PyTorch detector (the config and checkpoint the file was exported from) is
evaluated on the same split by mmdet's ``Runner.test``, both are printed, and the command fails
if their bbox mAP differs at the third decimal (mmdet reports three).
"""
import argparse
import sys
import tempfile
from typing import Dict, Optional, Sequence

from mmdfkd.deploy import OnnxDetectorRunner, coco_metrics
from mmdfkd.deploy.coco_eval import METRIC_NAMES


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Evaluate an ONNX detector on a COCO split')
    parser.add_argument('onnx_file', help='a file written by tools/export_onnx.py')
    parser.add_argument('--ann-file', required=True, help='COCO annotation file of the split')
    parser.add_argument('--img-dir', required=True, help='folder of the split\'s images')
    parser.add_argument('--pytorch', nargs=2, metavar=('CONFIG', 'CHECKPOINT'),
                        help='also evaluate the PyTorch detector the file was exported from')
    parser.add_argument('--threads', type=int, help='onnxruntime threads (default: all cores)')
    parser.add_argument('--work-dir', help='work dir of the PyTorch evaluation (default: a '
                        'temporary one)')
    return parser.parse_args(argv)


def onnx_coco_metrics(onnx_file: str, ann_file: str, img_dir: str,
                      num_threads: Optional[int] = None) -> Dict[str, float]:
    """COCO bbox metrics of an exported model (not rounded; empty if it detected nothing).

    Raises:
        ValueError: If the file records no class names (needed to map labels to categories).
    """
    runner = OnnxDetectorRunner(onnx_file, num_threads)
    if runner.classes is None:
        raise ValueError(f'{onnx_file} records no class names: re-export it from a config '
                         'whose test dataset names its classes (metainfo).')
    return coco_metrics(runner.detect_file, ann_file, img_dir, runner.classes, log=print)


def same_to_three_decimals(onnx: Dict[str, float], pytorch: Dict[str, float]) -> bool:
    """Whether the ONNX bbox mAP, rounded as mmdet rounds, equals PyTorch's (a model that
    detects nothing has no metrics: both must then be empty)."""
    if not onnx or not pytorch:
        return not onnx and not pytorch
    return round(onnx['bbox_mAP'], 3) == pytorch['bbox_mAP']


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    try:
        onnx = onnx_coco_metrics(args.onnx_file, args.ann_file, args.img_dir, args.threads)
    except (ValueError, FileNotFoundError) as exc:
        sys.exit(str(exc))
    rows = [('onnxruntime', onnx)]
    if args.pytorch:
        from mmdfkd.deploy import pytorch_coco_metrics
        with tempfile.TemporaryDirectory() as tmp:
            pytorch = pytorch_coco_metrics(*args.pytorch, args.ann_file, args.img_dir,
                                           args.work_dir or tmp)
        rows.append(('PyTorch', pytorch))
    print('| model | ' + ' | '.join(METRIC_NAMES) + ' |')
    print('|---' * (len(METRIC_NAMES) + 1) + '|')
    for name, metrics in rows:
        print(f'| {name} | ' + ' | '.join(f'{metrics[k]:.3f}' if k in metrics else 'n/a'
                                          for k in METRIC_NAMES) + ' |')
    if args.pytorch and not same_to_three_decimals(onnx, rows[1][1]):
        sys.exit('The ONNX model\'s bbox mAP differs from PyTorch\'s at the third decimal.')


if __name__ == '__main__':
    main()
