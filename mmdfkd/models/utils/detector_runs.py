"""Run a detector on images in the data loader's pixel space, or only as deep as needed."""
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Sequence

import torch
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData
from torch import Tensor, nn

from .normalization import normalize_like
from .recorder import ModuleOutputRecorder, resolve_submodule


def forward_sources(detector: nn.Module, inputs: Tensor, names: Sequence[str]) -> None:
    """Runs a detector only as deep as the named submodules: backbone and neck through
    ``extract_feat``, then each other named module (a head) called on the features.

    mmdet's ``_forward`` calls ``bbox_head.forward`` directly, which skips forward hooks, so
    heads are called as modules here: a :class:`ModuleOutputRecorder` sees them.

    Args:
        detector: An mmdet detector.
        inputs: Its normalized input, (N, 3, H, W).
        names: Submodule names (``'neck'``, ``'bbox_head'``, ...).
    """
    feats = detector.extract_feat(inputs)
    for name in dict.fromkeys(names):
        if name.split('.')[0] not in ('backbone', 'neck'):
            resolve_submodule(detector, name)(feats)


def record_outputs(detector: nn.Module, names: Sequence[str], inputs: Tensor) -> Dict[str, Any]:
    """The outputs of the named submodules on ``inputs``, running no deeper than they need.

    Args:
        detector: An mmdet detector.
        names: Submodule names.
        inputs: Its normalized input, (N, 3, H, W).

    Returns:
        ``{name: output}``, outputs as the modules return them.
    """
    with ModuleOutputRecorder(detector, names) as recorded:
        forward_sources(detector, inputs, names)
    return dict(recorded)


def query_samples(metainfo: Sequence[dict], inputs: Tensor) -> List[DetDataSample]:
    """Data samples without targets for ``predict``, with the batch's padded input shape."""
    shape = tuple(inputs.shape[-2:])
    return [DetDataSample(metainfo=dict(meta, batch_input_shape=shape, pad_shape=shape))
            for meta in metainfo]


@torch.no_grad()
def predict_images(detector: nn.Module, images: Tensor,
                   metainfo: Sequence[dict]) -> List[InstanceData]:
    """A detector's detections on images in the data loader's pixel space.

    The images are normalized the way the detector's own data preprocessor would (mean, std,
    channel order, padding) and predicted without rescaling.

    Args:
        detector: An mmdet detector in eval mode.
        images: Images in the loader's pixel space and channel order (BGR, 0-255),
            (N, 3, H, W).
        metainfo: Per image, its data sample metainfo (``img_shape``, ...).

    Returns:
        Per image, ``InstanceData`` with ``bboxes`` (K, 4) in image pixels, ``scores`` (K,) and
        ``labels`` (K,).
    """
    inputs = normalize_like(images, detector.data_preprocessor)
    results = detector.predict(inputs, query_samples(metainfo, inputs), rescale=False)
    return [result.pred_instances for result in results]


@contextmanager
def shared_features(detector: nn.Module, inputs: Tensor) -> Iterator[None]:
    """Within the block, ``detector.extract_feat(inputs)`` runs the backbone and neck once.

    mmdet's ``detector.loss(inputs, samples)`` computes the features itself and takes no
    precomputed ones, so calling it twice on one batch (the ground-truth loss, then the loss on
    the teachers' detections) would run the backbone twice. For the duration of the block the
    detector *instance* gets an ``extract_feat`` that returns the features of the first call on
    this very tensor ``inputs``; any other tensor goes to the method it had before. The class,
    other instances and other inputs are untouched, and on exit (also on an error) the
    instance is as it was: the instance attribute is removed, or a previous one restored.

    Args:
        detector: An mmdet detector.
        inputs: The batch whose features are shared, (N, 3, H, W).
    """
    missing = object()
    previous = vars(detector).get('extract_feat', missing)
    original = detector.extract_feat
    features: List[Any] = []

    def extract_feat(batch_inputs: Tensor) -> Any:
        if batch_inputs is not inputs:
            return original(batch_inputs)
        if not features:
            features.append(original(batch_inputs))
        return features[0]

    detector.extract_feat = extract_feat
    try:
        yield
    finally:
        if previous is missing:
            del detector.extract_feat
        else:
            detector.extract_feat = previous
