"""Deployment: a detector exported to ONNX (decoding and NMS in the graph), run with
onnxruntime without torch or mmdet, and scored on a COCO split against PyTorch.

:mod:`.onnx_runtime` and :mod:`.coco_eval` need neither torch nor mmdet;
:mod:`.onnx_runtime` imports nothing of mmdfkd and can be copied next to the ``.onnx`` file.
"""
from .coco_eval import coco_metrics
from .detector import detector_config_and_weights, load_detector, pytorch_coco_metrics
from .onnx_export import (OnnxDetector, compare_with_onnxruntime, default_input_size,
                          export_onnx, pipeline_resize)
from .onnx_runtime import Detections, OnnxDetectorRunner, load_image, resize_image

__all__ = ['Detections', 'OnnxDetector', 'OnnxDetectorRunner', 'coco_metrics',
           'compare_with_onnxruntime', 'default_input_size', 'detector_config_and_weights',
           'export_onnx', 'load_detector', 'load_image', 'pipeline_resize',
           'pytorch_coco_metrics', 'resize_image']
