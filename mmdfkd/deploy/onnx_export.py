"""A one-stage detector as an ONNX graph: image in, boxes, scores and labels out.

:func:`export_onnx` writes an ONNX file that onnxruntime runs without torch or mmdet;
:class:`~mmdfkd.deploy.onnx_runtime.OnnxDetectorRunner` (numpy, OpenCV and onnxruntime only)
loads the image, resizes it as the config's test pipeline does and runs the graph.

What is in the graph (:class:`OnnxDetector`), and why. Everything from pixels to final
detections, with mmdet's test-time semantics, so the graph alone is the deployed model and a
runtime in any language needs no post-processing code of its own:

1. The data preprocessor: BGR -> RGB if the config flips channels, ``(x - mean) / std``, and
   zero padding (in normalised values, as mmdet pads) at the bottom and right to a multiple of
   ``pad_size_divisor``.
2. Backbone, neck and head: the head's raw outputs (classification logits and box deltas of
   every level) are graph outputs too, to check the export against PyTorch.
3. Decoding as ``bbox_head.predict_by_feat``: per level, the (anchor, class) pairs scoring above
   ``test_cfg.score_thr``, the ``nms_pre`` best of them, anchors from the head's own
   ``AnchorGenerator`` for the input's feature-map sizes, boxes by mmdet's ``delta2bbox``
   clipped to the image; then rescaling to the original image by the ``scale_factor`` input,
   the ``min_bbox_size`` filter, class-wise NMS (``torchvision.ops.batched_nms``, exported as
   ONNX ``NonMaxSuppression``; the same offset trick and IoU as mmcv's ``batched_nms``) and the
   ``max_per_img`` best. Rescaling comes before NMS, as in mmdet: with a keep-ratio resize the
   two scale factors differ slightly, and IoUs with them.

In-graph NMS rather than a post-processing step: onnxruntime's ``NonMaxSuppression`` keeps
exactly what mmcv's NMS keeps (IoU > threshold suppresses), so nothing is lost, and a deployment
gets final detections from any runtime. mmdet's own export path for this decoding
(``onnx_delta2bbox``) imports ``mmdet.core`` of mmdet 2.x and fails in mmdet 3.x, and mmdeploy
(which rewrites the head) is not a dependency; the graph uses ``delta2bbox``, which traces.

Inputs: ``image``, float32 (1, 3, H, W), pixel values 0-255 in the channel order the test
pipeline loads (BGR, OpenCV's), already resized as the test pipeline resizes; ``scale_factor``,
float32 (2,), the resize's (w_scale, h_scale) (ones keep boxes in input pixels). Outputs:
``boxes`` float32 (N, 4) x1 y1 x2 y2 in original-image pixels, ``scores`` float32 (N,),
``labels`` int64 (N,), N <= ``max_per_img``, best first; then ``cls_score_<l>`` (1, A * C,
h_l, w_l) and ``bbox_pred_<l>`` (1, A * 4, h_l, w_l) per level l.

The exporter is torch's TorchScript exporter (``dynamo=False``): the selection above has
data-dependent shapes (how many pairs pass the threshold), which it records as ONNX
``NonZero``/``TopK``, whereas the dynamo exporter would need onnxscript (not in the stack) and
``torch.export`` hints for each such shape. Two things are adapted while tracing, and restored
afterwards:

* timm computes a ViT's token grid with ``math.ceil`` on the image size, which the tracer
  freezes into a constant; the grid is computed with integer division instead (same values).
* timm resamples the position embedding with antialiased bicubic interpolation, which the
  TorchScript exporter has no symbolic for. One is registered for the export only: ONNX
  ``Resize`` with ``antialias=1`` (opset 18), cubic coefficient -0.5 and out-of-image taps
  excluded, which is PyTorch's antialiased kernel (equal within 1e-5 on onnxruntime).

Dynamic input size (``dynamic=True``): H and W are free, and the graph is traced at a size one
step (the size divisor or the largest anchor stride) larger than the given one, because timm
skips the position-embedding resampling when the token grid equals the stored one, and the
tracer would freeze that shortcut. A model with Python branches on the input size (ViTDet's
windowed attention: window count, padding) keeps them as taken at the traced size; at sizes
with another window layout onnxruntime fails or differs, which :func:`compare_with_onnxruntime`
reports (``tools/export_onnx.py --dynamic`` checks a second size and refuses such a file). The
demo student (global attention) exports with a dynamic size; a windowed ViT exports exactly at
a fixed size.

One image per run (batch 1), as mmdet's test with batch size 1; a larger test batch pads its
images to the largest of the batch, which changes what a ViT sees unless all have one size.
"""
import contextlib
import json
import warnings
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from mmdet.models.dense_heads import AnchorHead
from mmdet.models.detectors import SingleStageDetector
from mmdet.models.task_modules.coders import DeltaXYWHBBoxCoder
from mmdet.models.task_modules.coders.delta_xywh_bbox_coder import delta2bbox
from mmdet.models.task_modules.prior_generators import AnchorGenerator
from mmdet.registry import DATASETS
from mmdet.utils import register_all_modules
from mmengine.config import Config
from timm.layers import PatchEmbed
from torch import nn
from torch.onnx import symbolic_helper
from torch.onnx._internal.torchscript_exporter import registration
from torchvision.ops import batched_nms

from .onnx_runtime import (META_CLASSES, META_DYNAMIC, META_INPUT_SIZE, META_RESIZE,
                           create_session)

# ONNX Resize has antialiasing from opset 18; torch's TorchScript exporter goes up to 20.
MIN_OPSET = 18
DEFAULT_OPSET = 18
# mmdet's BaseDenseHead decodes with DeltaXYWHBBoxCoder.decode's default ratio clip.
WH_RATIO_CLIP = 16 / 1000
# The op of F.interpolate(mode='bicubic', antialias=True), which timm's ViTs use.
_ANTIALIASED_BICUBIC = 'aten::_upsample_bicubic2d_aa'
# Test pipeline steps that leave the image alone; the runner reproduces LoadImageFromFile
# (OpenCV, BGR) and Resize, and nothing else.
_IMAGE_NEUTRAL_STEPS = ('LoadAnnotations', 'PackDetInputs')


class OnnxDetector(nn.Module):
    """A RetinaNet-like mmdet detector from image to detections, traceable to ONNX.

    Wraps a ``SingleStageDetector`` whose head is an ``AnchorHead`` with sigmoid
    classification, an ``AnchorGenerator`` and a ``DeltaXYWHBBoxCoder`` (mmdet's RetinaNet and
    the students of this project), and its ``DetDataPreprocessor``. See the module docstring
    for what the forward pass does.

    Args:
        detector: The detector, in eval mode; its modules are used, not copied.
        test_cfg: Decoding settings (``score_thr``, ``nms_pre``, ``nms``, ``max_per_img``,
            ``min_bbox_size``). Defaults to None: the head's ``test_cfg``.

    Raises:
        TypeError: If the detector, its head, anchor generator or box coder is of a kind
            the graph does not reproduce.
        ValueError: If ``test_cfg`` lacks a setting or asks for something else than NMS.
    """

    def __init__(self, detector: nn.Module, test_cfg: Optional[dict] = None) -> None:
        super().__init__()
        head = getattr(detector, 'bbox_head', None)
        what = {'detector': (detector, SingleStageDetector),
                'bbox_head': (head, AnchorHead),
                'bbox_head.prior_generator': (getattr(head, 'prior_generator', None),
                                              AnchorGenerator),
                'bbox_head.bbox_coder': (getattr(head, 'bbox_coder', None),
                                         DeltaXYWHBBoxCoder)}
        for name, (module, kind) in what.items():
            if not isinstance(module, kind):
                raise TypeError(
                    f'ONNX export takes a one-stage anchor detector (RetinaNet-like): its '
                    f'{name} must be a {kind.__name__}, got {type(module).__name__}.')
        if not head.use_sigmoid_cls or getattr(head.loss_cls, 'custom_cls_channels', False):
            raise TypeError('ONNX export decodes sigmoid class scores (use_sigmoid=True in the '
                            "head's loss_cls, as RetinaNet's focal loss); this head uses "
                            'softmax or custom class channels.')
        cfg = dict(head.test_cfg if test_cfg is None else test_cfg)
        missing = [k for k in ('score_thr', 'nms_pre', 'nms', 'max_per_img') if k not in cfg]
        if missing:
            raise ValueError(f'test_cfg {cfg} lacks {missing}: the graph needs every setting '
                             "of RetinaNet's test_cfg (score_thr, nms_pre, nms, max_per_img).")
        if dict(cfg['nms']).get('type', 'nms') != 'nms' or 'iou_threshold' not in cfg['nms']:
            raise ValueError(f"test_cfg.nms={cfg['nms']}: the graph runs plain NMS; set "
                             "nms=dict(type='nms', iou_threshold=...).")
        if int(cfg['nms_pre']) <= 0:
            raise ValueError(f"test_cfg.nms_pre={cfg['nms_pre']}: give the number of "
                             'candidates per level kept before NMS (RetinaNet: 1000).')
        self.detector = detector
        self.score_thr = float(cfg['score_thr'])
        self.nms_pre = int(cfg['nms_pre'])
        self.iou_threshold = float(cfg['nms']['iou_threshold'])
        self.max_per_img = int(cfg['max_per_img'])
        self.min_bbox_size = cfg.get('min_bbox_size', -1)
        pre = detector.data_preprocessor
        self.flip_channels = bool(pre._channel_conversion)
        self.normalize = bool(pre._enable_normalize)
        self.pad_size_divisor = int(pre.pad_size_divisor)
        self.pad_value = float(pre.pad_value)

    @property
    def num_levels(self) -> int:
        """Number of feature levels (pairs of raw outputs)."""
        return self.detector.bbox_head.prior_generator.num_levels

    def output_names(self) -> List[str]:
        """Names of the graph's outputs, in :meth:`forward`'s order."""
        levels = range(self.num_levels)
        return (['boxes', 'scores', 'labels'] + [f'cls_score_{i}' for i in levels]
                + [f'bbox_pred_{i}' for i in levels])

    def forward(self, image: torch.Tensor,
                scale_factor: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Detect.

        Args:
            image: float32 (1, 3, H, W), pixel values in the test pipeline's channel order.
            scale_factor: float32 (2,), (w_scale, h_scale) of the resize that made ``image``.

        Returns:
            ``boxes`` (N, 4), ``scores`` (N,), ``labels`` (N,) int64, then the head's
            classification maps and box-delta maps, one (1, C_l, h_l, w_l) per level each.
        """
        head = self.detector.bbox_head
        x = image[:, [2, 1, 0]] if self.flip_channels else image
        if self.normalize:
            pre = self.detector.data_preprocessor
            x = (x - pre.mean) / pre.std
        height, width = x.shape[-2:]
        divisor = self.pad_size_divisor
        x = F.pad(x, (0, (-width) % divisor, 0, (-height) % divisor), value=self.pad_value)
        outputs = head(self.detector.extract_feat(x))
        if len(outputs) != 2:
            raise TypeError(f'{type(head).__name__} gives {len(outputs)} outputs; the graph '
                            'decodes heads that give class scores and box deltas only '
                            '(RetinaHead-like, no centerness or IoU branch).')
        cls_scores, bbox_preds = outputs
        priors = head.prior_generator.grid_priors(
            [cls.shape[-2:] for cls in cls_scores], dtype=x.dtype, device=x.device)
        selected = [self._select_level(*level) for level in zip(cls_scores, bbox_preds, priors)]
        scores, labels, anchors, deltas = (torch.cat(parts) for parts in zip(*selected))
        coder = head.bbox_coder
        boxes = delta2bbox(anchors, deltas, coder.means, coder.stds,
                           max_shape=(height, width), wh_ratio_clip=WH_RATIO_CLIP,
                           clip_border=coder.clip_border, add_ctr_clamp=coder.add_ctr_clamp,
                           ctr_clamp=coder.ctr_clamp)
        boxes = boxes * (1 / scale_factor).repeat(2)
        if self.min_bbox_size >= 0:
            size = boxes[:, 2:] - boxes[:, :2]
            large = torch.nonzero((size > self.min_bbox_size).all(dim=1)).squeeze(1)
            boxes, scores, labels = boxes[large], scores[large], labels[large]
        keep = batched_nms(boxes, scores, labels, self.iou_threshold)[:self.max_per_img]
        return (boxes[keep], scores[keep], labels[keep], *cls_scores, *bbox_preds)

    def _select_level(self, cls_score: torch.Tensor, bbox_pred: torch.Tensor,
                      priors: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """The ``nms_pre`` best (anchor, class) pairs of a level above ``score_thr``, as
        mmdet's ``filter_scores_and_topk``.

        Args:
            cls_score: (1, A * C, h, w) logits.
            bbox_pred: (1, A * 4, h, w) deltas.
            priors: (h * w * A, 4) anchors.

        Returns:
            Scores (K,), labels (K,), anchors (K, 4) and deltas (K, 4), best first.
        """
        num_classes = self.detector.bbox_head.cls_out_channels
        scores = cls_score[0].permute(1, 2, 0).reshape(-1).sigmoid()
        deltas = bbox_pred[0].permute(1, 2, 0).reshape(-1, 4)
        candidates = torch.nonzero(scores > self.score_thr).squeeze(1)
        best, order = scores[candidates].sort(descending=True)
        pairs = candidates[order[:self.nms_pre]]
        anchors = torch.div(pairs, num_classes, rounding_mode='floor')
        return best[:self.nms_pre], pairs % num_classes, priors[anchors], deltas[anchors]


def pipeline_resize(cfg: Config) -> Optional[dict]:
    """The resize of a config's test pipeline, for the ONNX runner to repeat.

    Args:
        cfg: A detector config with ``test_dataloader.dataset.pipeline``.

    Returns:
        ``dict(scale=[w, h], keep_ratio=bool)`` of its ``Resize`` step (mmcv's bilinear OpenCV
        resize), or None if it has none.

    Raises:
        ValueError: If the pipeline has a step the runner does not repeat (anything but
            ``LoadImageFromFile`` in colour with OpenCV, one ``Resize`` by ``scale``,
            ``LoadAnnotations`` and ``PackDetInputs``).
    """
    resize = None
    for step in cfg.test_dataloader.dataset.pipeline:
        kind = getattr(step['type'], '__name__', str(step['type'])).split('.')[-1]
        if kind in _IMAGE_NEUTRAL_STEPS:
            continue
        if kind == 'LoadImageFromFile' and step.get('color_type', 'color') == 'color' \
                and step.get('imdecode_backend', 'cv2') == 'cv2':
            continue
        if (kind == 'Resize' and resize is None and step.get('scale') is not None
                and step.get('interpolation', 'bilinear') == 'bilinear'
                and step.get('backend', 'cv2') == 'cv2'):
            scale = step['scale']
            scale = [scale, scale] if isinstance(scale, int) else [int(s) for s in scale]
            resize = dict(scale=scale, keep_ratio=bool(step.get('keep_ratio', False)))
            continue
        raise ValueError(
            f'The test pipeline step {dict(step)} is not repeated by the ONNX runner, which '
            'loads images with OpenCV in colour (LoadImageFromFile), resizes them once by '
            'scale with bilinear OpenCV interpolation (Resize) and runs the graph. Export '
            'with a config whose test pipeline is LoadImageFromFile, Resize, LoadAnnotations, '
            'PackDetInputs.')
    return resize


@contextlib.contextmanager
def _traceable(model: nn.Module) -> Iterator[None]:
    """Adapts ``model`` and torch's exporter for tracing; undone on exit.

    * timm's patch embeddings compute the token grid with integer division instead of
      ``math.ceil``, which would freeze the traced size into a constant.
    * ``aten::_upsample_bicubic2d_aa`` (timm's position-embedding resampling) gets an ONNX
      symbolic: ``Resize`` with antialiasing, as PyTorch's kernel.
    """
    embeds = [m for m in model.modules()
              if isinstance(m, PatchEmbed) and getattr(m, 'dynamic_img_pad', False)]
    for embed in embeds:
        embed.dynamic_feat_size = _grid_size_function(embed.patch_size)
    known = registration.registry.get_function_group(_ANTIALIASED_BICUBIC) is not None
    torch.onnx.register_custom_op_symbolic(_ANTIALIASED_BICUBIC, _antialiased_bicubic,
                                           MIN_OPSET)
    try:
        yield
    finally:
        torch.onnx.unregister_custom_op_symbolic(_ANTIALIASED_BICUBIC, MIN_OPSET)
        if not known:
            # torch's unregister leaves an empty entry, on which a later export of the op
            # fails with a ValueError instead of torch's UnsupportedOperatorError.
            registration.registry._registry.pop(_ANTIALIASED_BICUBIC, None)
        for embed in embeds:
            del embed.dynamic_feat_size  # back to the class's method


def _grid_size_function(
        patch_size: Tuple[int, int]) -> Callable[[Tuple[int, int]], Tuple[int, int]]:
    """timm ``PatchEmbed.dynamic_feat_size`` with padding, in integer arithmetic."""
    def dynamic_feat_size(img_size: Tuple[int, int]) -> Tuple[int, int]:
        return ((img_size[0] + patch_size[0] - 1) // patch_size[0],
                (img_size[1] + patch_size[1] - 1) // patch_size[1])
    return dynamic_feat_size


def _antialiased_bicubic(g, image, output_size, align_corners, scales_h=None, scales_w=None):
    """ONNX symbolic of ``aten::_upsample_bicubic2d_aa`` (``F.interpolate(mode='bicubic',
    antialias=True)``): PyTorch's antialiased kernel has coefficient -0.5 and renormalises the
    taps inside the image."""
    batch_channels = symbolic_helper._slice_helper(g, g.op('Shape', image), axes=[0],
                                                   starts=[0], ends=[2])
    sizes = g.op('Concat', batch_channels,
                 g.op('Cast', output_size, to_i=torch.onnx.TensorProtoDataType.INT64), axis_i=0)
    corners = symbolic_helper._maybe_get_const(align_corners, 'b')
    return g.op('Resize', image, symbolic_helper._optional_input_placeholder_tensor(g),
                symbolic_helper._optional_input_placeholder_tensor(g), sizes,
                antialias_i=1, cubic_coeff_a_f=-0.5, exclude_outside_i=1, mode_s='cubic',
                coordinate_transformation_mode_s='align_corners' if corners else 'half_pixel')


def dataset_classes(cfg: Config) -> Optional[List[str]]:
    """The class names of a config's test dataset (its ``metainfo``, else its class's), in
    label order; None if neither names them."""
    dataset = cfg.test_dataloader.dataset
    classes = (dataset.get('metainfo') or {}).get('classes')
    if classes is None:
        register_all_modules()
        kind = DATASETS.get(dataset.type)
        classes = getattr(kind, 'METAINFO', {}).get('classes') if kind is not None else None
    return None if classes is None else [str(c) for c in classes]


def default_input_size(cfg: Config) -> Tuple[int, int]:
    """(H, W) of the test pipeline's resize scale: the size most images are resized to.

    Raises:
        ValueError: If the test pipeline does not resize (then give the size).
    """
    resize = pipeline_resize(cfg)
    if resize is None:
        raise ValueError('The test pipeline has no Resize: give the input size (H, W) to '
                         'export at.')
    width, height = resize['scale']
    return height, width


def example_inputs(input_size: Sequence[int], seed: int = 0) -> Tuple[torch.Tensor, ...]:
    """A random image (pixel values 0-255) of ``input_size`` and unit scale factors."""
    generator = torch.Generator().manual_seed(seed)
    image = torch.randint(0, 256, (1, 3, *input_size), generator=generator).float()
    return image, torch.ones(2)


def export_onnx(model: nn.Module, cfg: Config, out_file: str,
                input_size: Optional[Sequence[int]] = None, dynamic: bool = False,
                opset: int = DEFAULT_OPSET) -> OnnxDetector:
    """Exports a detector to an ONNX file and checks it with ``onnx.checker``.

    The file's metadata records what the runner needs: the test pipeline's resize, the class
    names, the input size and whether it is dynamic.

    Args:
        model: The detector (see :class:`OnnxDetector`), in eval mode.
        cfg: Its config (test pipeline, ``dataset_meta`` classes from the test dataset).
        out_file: The ``.onnx`` file to write.
        input_size: (H, W) of the input. Defaults to None: the test pipeline's resize scale.
        dynamic: Let H and W vary (see the module docstring). Defaults to False: the graph
            takes images of ``input_size`` only.
        opset: ONNX opset, at least 18. Defaults to 18.

    Returns:
        The traced :class:`OnnxDetector`, to compare the file with.

    Raises:
        ValueError: If the opset or input size is invalid, or the test pipeline has a step
            the runner does not repeat.
        TypeError: If the detector is of a kind the graph does not reproduce.
    """
    if opset < MIN_OPSET:
        raise ValueError(f'opset {opset} is too old: the ViT resamples its position embedding '
                         'with antialiased bicubic interpolation, which ONNX Resize has from '
                         f'opset {MIN_OPSET}. Export with opset {MIN_OPSET} or later.')
    resize = pipeline_resize(cfg)
    input_size = tuple(default_input_size(cfg) if input_size is None else input_size)
    if len(input_size) != 2 or min(input_size) < 1:
        raise ValueError(f'input size must be (H, W) with positive sides, got {input_size}')
    wrapper = OnnxDetector(model).eval()
    trace_size = input_size
    if dynamic:  # see the module docstring: not the size of any shortcut of the model
        step = max(wrapper.pad_size_divisor,
                   *(max(s) for s in model.bbox_head.prior_generator.strides))
        trace_size = (input_size[0] + step, input_size[1] + step)
    levels = range(wrapper.num_levels)
    dynamic_axes: Dict[str, Dict[int, str]] = {name: {0: 'num_detections'}
                                               for name in ('boxes', 'scores', 'labels')}
    if dynamic:
        dynamic_axes['image'] = {2: 'height', 3: 'width'}
        for i in levels:
            for name in (f'cls_score_{i}', f'bbox_pred_{i}'):
                dynamic_axes[name] = {2: f'height_{i}', 3: f'width_{i}'}
    with _traceable(model), torch.no_grad(), warnings.catch_warnings():
        # The tracer warns at every Python branch on a size; which of them matter is what
        # compare_with_onnxruntime checks.
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        torch.onnx.export(wrapper, example_inputs(trace_size), out_file, dynamo=False,
                          opset_version=opset, input_names=['image', 'scale_factor'],
                          output_names=wrapper.output_names(), dynamic_axes=dynamic_axes)
    proto = onnx.load(out_file)
    classes = dataset_classes(cfg)
    for key, value in {META_RESIZE: resize, META_INPUT_SIZE: list(input_size),
                       META_DYNAMIC: dynamic,
                       META_CLASSES: classes}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, out_file)
    return wrapper


def compare_with_onnxruntime(wrapper: OnnxDetector, onnx_file: str,
                             input_size: Sequence[int], seed: int = 0,
                             num_threads: int = 1) -> Dict[str, float]:
    """Runs PyTorch and onnxruntime on one random image and compares their outputs.

    Args:
        wrapper: The :class:`OnnxDetector` the file was exported from.
        onnx_file: The exported file.
        input_size: (H, W) of the random image.
        seed: Seed of the random image. Defaults to 0.
        num_threads: onnxruntime's intra-op threads. Defaults to 1.

    Returns:
        ``raw_max_abs_diff``: the largest absolute difference over every raw head output
        (inf if a shape differs);
        ``detections_torch`` and ``detections_onnx``: how many detections each made;
        ``box_max_abs_diff``: the largest box coordinate difference when both made the same
        number of detections (else inf).
    """
    image, scale_factor = example_inputs(input_size, seed)
    with torch.no_grad():
        expected = [t.numpy() for t in wrapper(image, scale_factor)]
    got = create_session(onnx_file, num_threads).run(
        None, dict(image=image.numpy(), scale_factor=scale_factor.numpy()))
    raw = max(float(np.abs(e - g).max()) if e.shape == g.shape else float('inf')
              for e, g in zip(expected[3:], got[3:]))
    same_count = expected[0].shape == got[0].shape
    boxes = (float(np.abs(expected[0] - got[0]).max(initial=0)) if same_count
             else float('inf'))
    return dict(raw_max_abs_diff=raw, detections_torch=len(expected[0]),
                detections_onnx=len(got[0]), box_max_abs_diff=boxes)
