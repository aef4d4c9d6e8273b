"""Run a detector exported by ``tools/export_onnx.py`` with onnxruntime: no torch, no mmdet.

This module imports only numpy, OpenCV and onnxruntime (and nothing of mmdfkd), so it can be
copied next to the ``.onnx`` file and used on its own::

    runner = OnnxDetectorRunner('student.onnx')
    detections = runner(cv2.imread('image.jpg'))   # or runner.detect_file('image.jpg')
    detections.boxes, detections.scores, detections.labels, runner.classes

The graph holds the whole detector, decoding and NMS included (see
:mod:`mmdfkd.deploy.onnx_export`); the runner does what the config's test pipeline did before
the model: load the image with OpenCV in BGR (mmcv's ``LoadImageFromFile``), resize it as mmdet's
``Resize`` (bilinear, by ``scale``, keeping the aspect ratio or not) and pass the resize's scale
factors, by which the graph maps its boxes back to the original image. One image per call, as
mmdet's test with batch size 1 (a larger test batch pads its images to the largest of the
batch, which changes what a ViT sees unless all images have one size).
"""
import json
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import cv2
import numpy as np
import onnxruntime

# Keys of the file's metadata, written by mmdfkd.deploy.onnx_export.export_onnx.
META_RESIZE = 'mmdfkd.resize'
META_CLASSES = 'mmdfkd.classes'
META_INPUT_SIZE = 'mmdfkd.input_size'
META_DYNAMIC = 'mmdfkd.dynamic_size'


class Detections(NamedTuple):
    """Detections of one image, best first.

    Attributes:
        boxes: float32 (N, 4), x1 y1 x2 y2 in pixels of the original image.
        scores: float32 (N,).
        labels: int64 (N,), indices into the model's classes.
    """
    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray


def create_session(onnx_file: str,
                   num_threads: Optional[int] = None) -> onnxruntime.InferenceSession:
    """An onnxruntime CPU session.

    Args:
        onnx_file: The ``.onnx`` file.
        num_threads: Intra-op threads. Defaults to None: onnxruntime's choice (all cores).
    """
    options = onnxruntime.SessionOptions()
    if num_threads is not None:
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(onnx_file, options, providers=['CPUExecutionProvider'])


def rescale_size(width: int, height: int, scale: Sequence[int]) -> Tuple[int, int]:
    """The size mmcv's ``imrescale`` gives an image: as large as fits ``scale`` (long edge
    at most ``max(scale)``, short edge at most ``min(scale)``), same aspect ratio.

    Returns:
        (new_width, new_height), rounded as mmcv rounds.
    """
    factor = min(max(scale) / max(height, width), min(scale) / min(height, width))
    return int(width * factor + 0.5), int(height * factor + 0.5)


def resize_image(image: np.ndarray, resize: Optional[dict]) -> Tuple[np.ndarray, np.ndarray]:
    """Resizes an image as mmdet's test ``Resize`` step does.

    Args:
        image: (H, W, 3) uint8.
        resize: ``dict(scale=[w, h], keep_ratio=bool)``, or None for no resize.

    Returns:
        The resized image and float32 (2,) scale factors (new_w / w, new_h / h).
    """
    height, width = image.shape[:2]
    if resize is None:
        return image, np.ones(2, dtype=np.float32)
    if resize['keep_ratio']:
        size = rescale_size(width, height, resize['scale'])
    else:
        size = tuple(resize['scale'])
    resized = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    return resized, np.array([size[0] / width, size[1] / height], dtype=np.float32)


def load_image(path: str) -> np.ndarray:
    """An image file as (H, W, 3) uint8 BGR, as mmcv's ``LoadImageFromFile`` reads it.

    Raises:
        FileNotFoundError: If OpenCV cannot read the file.
    """
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f'{path} does not exist or is not an image OpenCV can read')
    return image


class OnnxDetectorRunner:
    """An exported detector on onnxruntime's CPU provider.

    Args:
        onnx_file: The file written by ``tools/export_onnx.py``.
        num_threads: onnxruntime intra-op threads. Defaults to None: all cores.

    Attributes:
        classes: Class names, in label order (None if the export did not know them).
        resize: The test pipeline's resize (see :func:`resize_image`), None for none.
        input_size: (H, W) the model was exported at.
        dynamic: Whether the graph takes other sizes too.

    Raises:
        ValueError: If the file was not written by ``tools/export_onnx.py`` (no metadata).
    """

    def __init__(self, onnx_file: str, num_threads: Optional[int] = None) -> None:
        self.session = create_session(onnx_file, num_threads)
        meta = self.session.get_modelmeta().custom_metadata_map
        if META_RESIZE not in meta:
            raise ValueError(f'{onnx_file} has no {META_RESIZE!r} metadata: export the model '
                             'with tools/export_onnx.py, which records the test resize.')
        self.resize: Optional[dict] = json.loads(meta[META_RESIZE])
        self.classes: Optional[List[str]] = json.loads(meta[META_CLASSES])
        self.input_size = tuple(json.loads(meta[META_INPUT_SIZE]))
        self.dynamic = bool(json.loads(meta[META_DYNAMIC]))
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.onnx_file = onnx_file

    def preprocess(self, image: np.ndarray) -> Dict[str, np.ndarray]:
        """The graph's inputs for an image: resized, as float32 (1, 3, h, w), and the scale
        factors.

        Args:
            image: (H, W, 3) uint8 BGR, as :func:`load_image` gives.

        Raises:
            ValueError: If the image is not (H, W, 3), or the graph has a fixed size that the
                resized image does not have.
        """
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f'expected an (H, W, 3) BGR image, got shape {image.shape}')
        resized, scale_factor = resize_image(image, self.resize)
        if not self.dynamic and resized.shape[:2] != self.input_size:
            raise ValueError(
                f'{self.onnx_file} takes {self.input_size[0]}x{self.input_size[1]} images only, '
                f'but this {image.shape[0]}x{image.shape[1]} image resizes to '
                f'{resized.shape[0]}x{resized.shape[1]}: export with --dynamic, or at this '
                'size with --input-size.')
        tensor = np.ascontiguousarray(resized.transpose(2, 0, 1)[None], dtype=np.float32)
        return dict(image=tensor, scale_factor=scale_factor)

    def run(self, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """Every output of the graph (detections and raw head maps), by name."""
        return dict(zip(self.output_names, self.session.run(None, inputs)))

    def __call__(self, image: np.ndarray) -> Detections:
        """Detects objects in an (H, W, 3) uint8 BGR image (see :meth:`preprocess`)."""
        outputs = self.run(self.preprocess(image))
        return Detections(outputs['boxes'], outputs['scores'], outputs['labels'])

    def detect_file(self, path: str) -> Detections:
        """Detects objects in an image file."""
        return self(load_image(path))
