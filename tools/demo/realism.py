"""Realism of synthetic images: the Fréchet distance (FD) between their features and the real
validation images' features, measured with a network that is not the teacher.

The features are the backbone outputs of a detector trained on the real train images without
the teacher (the quality benchmark's ``student_real`` row, the ViT student), each output level
average-pooled over its positions and the levels concatenated. The teacher would be a biased
judge: data-free inversion optimizes the images so that the teacher's BatchNorm layers see the
statistics they stored (the BN-statistics prior) and its detections hit the targets, so the
teacher's features would reward exactly what the inverter already optimized, not whether the
images resemble real ones to a network that learned them on its own.

FD is biased by sample size (the covariances are estimated from the samples), so a synthetic
set's FD is reported with a reference: the FD between an equally sized random subset of the
real train images and the same val images, what a perfect synthesizer would score.

Benchmark machinery (``benchmarks/quality.py``), not part of the installed package.
"""
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmcv.transforms import Compose
from mmdet.registry import TRANSFORMS
from mmdet.utils import get_test_pipeline_cfg
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from torch import nn

from mmdfkd.utils import checkpoint_weights, load_checkpoint_file, weights_fit_problem
from mmdfkd.utils.model_stats import build_model


def dataset_image_paths(data_root: str, ann_file: str, img_prefix: str) -> List[str]:
    """The image files a COCO-format dataset lists, in the order of its ``images``.

    Works for the demo data (``annotations/instances_val.json``, ``val/``) and for a synthetic
    bank (``targets.json``, ``images/``).

    Args:
        data_root: Dataset root.
        ann_file: COCO annotation file, relative to ``data_root``.
        img_prefix: Image folder, relative to ``data_root``.

    Returns:
        The image paths.

    Raises:
        FileNotFoundError: If the annotation file or a listed image does not exist.
    """
    path = osp.join(data_root, ann_file)
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} does not exist: expected a COCO annotation file '
                                f'listing the images of {data_root}.')
    with open(path) as f:
        images = json.load(f)['images']
    paths = [osp.join(data_root, img_prefix, image['file_name']) for image in images]
    missing = [p for p in paths if not osp.isfile(p)]
    if missing:
        raise FileNotFoundError(f'{len(missing)} images listed in {path} do not exist (e.g. '
                                f'{missing[0]}).')
    return paths


def load_feature_detector(config: str, checkpoint: str) -> nn.Module:
    """The detector of ``config`` with the weights of ``checkpoint``, in eval mode, on CPU.

    Args:
        config: A detector config file (the one the checkpoint was trained with).
        checkpoint: Its checkpoint (mmengine's dict with ``state_dict``, or a bare state dict).

    Returns:
        The detector.

    Raises:
        ValueError: If the checkpoint's weights do not fit the config's model.
    """
    detector = build_model(config)
    weights = checkpoint_weights(load_checkpoint_file(checkpoint))
    problem = weights_fit_problem(detector, weights)
    if problem:
        raise ValueError(f'{checkpoint} does not fit the model of {config}: {problem}. Give the '
                         'checkpoint that config trained.')
    detector.load_state_dict(weights, strict=False)  # extra entries (none needed) are ignored
    return detector.eval()


def image_pipeline(config: str) -> Compose:
    """The config's test pipeline without its annotation loading: the images are read, resized
    and packed exactly as the detector sees them at test time."""
    steps = [step for step in get_test_pipeline_cfg(Config.fromfile(config))
             if step['type'] != 'LoadAnnotations']
    return Compose([TRANSFORMS.build(step) for step in steps])


def pool_levels(levels: Sequence[torch.Tensor]) -> torch.Tensor:
    """Global average pooling of each feature level, concatenated.

    Args:
        levels: Feature maps of shapes (N, C_i, H_i, W_i).

    Returns:
        Features of shape (N, sum of C_i).
    """
    return torch.cat([level.mean(dim=(2, 3)) for level in levels], dim=1)


@torch.no_grad()
def image_features(detector: nn.Module, pipeline: Compose, paths: Sequence[str],
                   batch_size: int = 16) -> np.ndarray:
    """Pooled backbone features of images (see :func:`pool_levels`).

    The images go through ``pipeline`` and the detector's data preprocessor (normalization,
    channel order, padding to the batch's largest image) as at test time.

    Args:
        detector: An mmdet detector with ``data_preprocessor`` and ``backbone``.
        pipeline: See :func:`image_pipeline`.
        paths: Image files.
        batch_size: Images per forward pass. Default 16.

    Returns:
        Features of shape (len(paths), channels of all backbone levels), float64.
    """
    features = []
    for first in range(0, len(paths), batch_size):
        batch = pseudo_collate([pipeline(dict(img_path=path, img_id=first + i))
                                for i, path in enumerate(paths[first:first + batch_size])])
        inputs = detector.data_preprocessor(batch, False)['inputs']
        features.append(pool_levels(detector.backbone(inputs)).double())
    return torch.cat(features).numpy()


def feature_statistics(features: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Mean of shape (D,) and covariance of shape (D, D) of features of shape (N, D), N >= 2."""
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f'Feature statistics need an (N, D) array with N >= 2, got shape '
                         f'{features.shape}.')
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix; eigenvalues that rounding
    made slightly negative count as 0."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray,
                     sigma2: np.ndarray) -> float:
    """Fréchet distance between the Gaussians N(mu1, sigma1) and N(mu2, sigma2):
    ``|mu1 - mu2|^2 + Tr(sigma1 + sigma2 - 2 sqrtm(sigma1 sigma2))``.

    ``Tr(sqrtm(sigma1 sigma2))`` is computed as the sum of the square roots of the eigenvalues
    of the symmetric ``sqrt(sigma1) sigma2 sqrt(sigma1)``, which has the same eigenvalues as
    ``sigma1 sigma2``: no complex parts arise and singular covariances (fewer samples than
    dimensions) are handled, where the standard FID code needs a diagonal offset and drops
    imaginary parts. Eigenvalues that rounding made slightly negative count as 0; a zero
    eigenvalue that rounding made slightly positive adds the square root of that error
    (about 1e-8 for covariances of order 1).

    Args:
        mu1, mu2: Means of shape (D,).
        sigma1, sigma2: Covariances of shape (D, D).

    Returns:
        The distance (>= 0 up to rounding).
    """
    mu1, mu2, sigma1, sigma2 = (np.asarray(a, dtype=np.float64)
                                for a in (mu1, mu2, sigma1, sigma2))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(f'Means and covariances of the same dimension D are needed, got means '
                         f'{mu1.shape}, {mu2.shape} and covariances {sigma1.shape}, '
                         f'{sigma2.shape}.')
    root1 = _psd_sqrt(sigma1)
    product = root1 @ sigma2 @ root1
    eigenvalues = np.linalg.eigvalsh((product + product.T) / 2)
    trace_sqrt = np.sqrt(np.clip(eigenvalues, 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)


class RealismMeter:
    """Scores sets of images against the real val images with one detector's pooled backbone
    features: FD of the set, and FD of an equally sized random subset of the real train images
    (the reference a perfect synthesizer would score).

    Args:
        config: The feature detector's config (its test pipeline reads the images).
        checkpoint: The feature detector's checkpoint (not the teacher's; see the module
            docstring).
        val_paths: The real evaluation images.
        train_paths: The real train images the reference subsets are drawn from.
        seed: Seed of the reference subsets. Default 0.
        batch_size: Images per forward pass. Default 16.
    """

    def __init__(self, config: str, checkpoint: str, val_paths: Sequence[str],
                 train_paths: Sequence[str], seed: int = 0, batch_size: int = 16) -> None:
        self.detector = load_feature_detector(config, checkpoint)
        self.pipeline = image_pipeline(config)
        self.batch_size = batch_size
        self.val_paths = list(val_paths)
        self.train_paths = list(train_paths)
        self.seed = seed
        self._val: Optional[Tuple[np.ndarray, np.ndarray]] = None
        self._references: Dict[int, float] = {}

    def features(self, paths: Sequence[str]) -> np.ndarray:
        """Pooled backbone features of shape (len(paths), D) (see :func:`image_features`)."""
        return image_features(self.detector, self.pipeline, paths, self.batch_size)

    def distance_to_val(self, features: np.ndarray) -> float:
        """FD between features of shape (N, D) and the val images' features."""
        if self._val is None:
            self._val = feature_statistics(self.features(self.val_paths))
        return frechet_distance(*feature_statistics(features), *self._val)

    def reference(self, num: int) -> float:
        """FD of ``num`` random real train images (all of them if fewer) to the val images."""
        num = min(num, len(self.train_paths))
        if num not in self._references:
            chosen = np.sort(np.random.default_rng(self.seed).choice(
                len(self.train_paths), num, replace=False))
            self._references[num] = self.distance_to_val(
                self.features([self.train_paths[i] for i in chosen]))
        return self._references[num]

    def score(self, paths: Sequence[str]) -> Dict[str, float]:
        """FD of the images at ``paths`` to the val images, with its reference.

        Returns:
            dict: ``fd``, ``reference_fd`` (real train subset of the same size),
            ``images``, ``reference_images`` and ``val_images`` (the sample sizes).
        """
        fd = self.distance_to_val(self.features(paths))
        return dict(fd=fd, reference_fd=self.reference(len(paths)), images=len(paths),
                    reference_images=min(len(paths), len(self.train_paths)),
                    val_images=len(self.val_paths))
