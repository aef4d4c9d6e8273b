"""A proxy pretraining task for the demo's frozen-BN teacher: texture classification.

mmdet's detectors start from a backbone pretrained on another data set (ImageNet) and keep its
BatchNorm frozen (``norm_eval=True``), so their BN statistics describe the pretraining images,
not the detection data. The demo plays that role with procedural textures: ten texture families
(:data:`PROXY_CLASSES`) with random colours, frequencies, orientations, phases and contrast,
each image filling the whole frame with one pattern, so the images and their BN statistics
differ from the demo's solid shapes on calm backgrounds (``shapes_coco``).

:func:`train_proxy_classifier` trains mmdet's ResNet (the demo teacher's backbone settings)
with global average pooling and a linear classifier on them, in plain PyTorch;
:func:`save_backbone_checkpoint` writes the backbone's weights with the key names of mmdet's
``ResNet`` (as torchvision's ImageNet checkpoints have them), which a detector config loads
with ``init_cfg=dict(type='Pretrained', checkpoint=PATH)`` on its backbone.

Every image is drawn from its own random stream seeded by ``(seed, split, index)``: the same
seed gives identical pixels, and a smaller set is a prefix of a larger one.
"""
import math
import os
import os.path as osp
import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from mmdet.models.backbones import ResNet
from torch import Tensor, nn

PROXY_CLASSES = ('grating', 'plaid', 'checkerboard', 'dot_lattice', 'concentric_rings',
                 'white_noise', 'pink_noise', 'brown_noise', 'linear_gradient',
                 'radial_gradient')
"""Texture families, in label order."""

# The demo teacher's backbone (configs/demo/_base_/models/retinanet_r18_shapes.py), trained
# with BN in train mode; only the last stage feeds the classifier (out_indices changes no
# parameter, so the weights fit the detector's backbone).
BACKBONE = dict(depth=18, num_stages=4, out_indices=(3,), style='pytorch', frozen_stages=-1,
                norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False)
# The demo detectors' input normalization (mmdet's DetDataPreprocessor of
# retinanet_r50_fpn.py, RGB order): the backbone sees its pretraining images as the detector
# will see its own.
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)

_SPLIT_CODES = {'train': 0, 'val': 1}
# Frequencies of the periodic families, in cycles per image side: from a few stripes to a
# period of about 5 px at 64 px.
_FREQUENCY_RANGE = (2.0, 12.0)
# Spectral slopes of the noise families (amplitude ~ 1 / f ** slope).
_NOISE_SLOPES = {'white_noise': 0.0, 'pink_noise': 1.0, 'brown_noise': 2.0}
# Contrast of the pattern between its two colours (1: from one colour to the other).
_CONTRAST_RANGE = (0.4, 1.0)


def _pattern(rng: np.random.Generator, name: str, size: int) -> np.ndarray:
    """A random pattern of one texture family, float array (size, size) in [0, 1]."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) / size
    theta = rng.uniform(0, math.pi)
    # Coordinates along and across a random orientation.
    u = x * math.cos(theta) + y * math.sin(theta)
    v = -x * math.sin(theta) + y * math.cos(theta)
    freq = rng.uniform(*_FREQUENCY_RANGE)
    phase = rng.uniform(0, 2 * math.pi)
    if name == 'grating':
        return 0.5 + 0.5 * np.sin(2 * math.pi * freq * u + phase)
    if name == 'plaid':
        # A second grating at 40 to 90 degrees from the first.
        delta = rng.uniform(math.radians(40), math.radians(90))
        u2 = x * math.cos(theta + delta) + y * math.sin(theta + delta)
        freq2 = rng.uniform(*_FREQUENCY_RANGE)
        return 0.5 + 0.25 * (np.sin(2 * math.pi * freq * u + phase)
                             + np.sin(2 * math.pi * freq2 * u2 + rng.uniform(0, 2 * math.pi)))
    if name == 'checkerboard':
        freq = freq / 2  # a square per half period
        return (np.sin(2 * math.pi * freq * u + phase)
                * np.sin(2 * math.pi * freq * v + rng.uniform(0, 2 * math.pi)) > 0).astype(
                    np.float64)
    if name == 'dot_lattice':
        # Offsets from the nearest lattice point, in periods.
        du = (u * freq + phase / (2 * math.pi)) % 1.0 - 0.5
        dv = (v * freq + rng.uniform(0, 1)) % 1.0 - 0.5
        return (np.hypot(du, dv) < rng.uniform(0.15, 0.35)).astype(np.float64)
    if name == 'concentric_rings':
        cx, cy = rng.uniform(0, 1, size=2)
        return 0.5 + 0.5 * np.sin(2 * math.pi * freq * np.hypot(x - cx, y - cy) + phase)
    if name in _NOISE_SLOPES:
        fy = np.fft.fftfreq(size)[:, None]
        fx = np.fft.fftfreq(size)[None, :]
        radius = np.hypot(fx, fy)
        radius[0, 0] = 1.0
        spectrum = (rng.standard_normal((size, size)) + 1j * rng.standard_normal((size, size)))
        spectrum /= radius ** _NOISE_SLOPES[name]
        spectrum[0, 0] = 0.0
        noise = np.fft.ifft2(spectrum).real
        low, high = np.percentile(noise, (1, 99))
        return np.clip((noise - low) / max(high - low, 1e-12), 0.0, 1.0)
    if name == 'linear_gradient':
        ramp = u - u.min()
        return ramp / ramp.max()
    if name == 'radial_gradient':
        cx, cy = rng.uniform(0, 1, size=2)
        distance = np.hypot(x - cx, y - cy)
        return distance / distance.max()
    raise ValueError(f'unknown texture family {name!r}; expected one of {PROXY_CLASSES}')


def make_proxy_image(rng: np.random.Generator, label: int, size: int) -> np.ndarray:
    """One image of a texture family: its pattern between two random colours.

    Args:
        rng: Source of the image's random parameters (colours, frequency, orientation, phase,
            contrast, noise).
        label: Index into :data:`PROXY_CLASSES`.
        size: Image side in pixels.

    Returns:
        np.ndarray: RGB image, uint8 array (size, size, 3).
    """
    if not 0 <= label < len(PROXY_CLASSES):
        raise ValueError(f'label {label} is not a texture family: expected 0 to '
                         f'{len(PROXY_CLASSES) - 1} ({PROXY_CLASSES})')
    pattern = _pattern(rng, PROXY_CLASSES[label], size)
    contrast = rng.uniform(*_CONTRAST_RANGE)
    pattern = 0.5 + contrast * (pattern - 0.5)
    colours = rng.uniform(0, 255, size=(2, 3))
    image = colours[0] + (colours[1] - colours[0]) * pattern[..., None]
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def make_proxy_set(num_images: int, size: int, seed: int = 0,
                   split: str = 'train') -> Tuple[np.ndarray, np.ndarray]:
    """A balanced set of texture images: image ``i`` has label ``i % len(PROXY_CLASSES)``.

    Args:
        num_images: Number of images.
        size: Image side in pixels.
        seed: Seed of the set. Defaults to 0.
        split: ``'train'`` or ``'val'``: the splits of one seed are different images.
            Defaults to ``'train'``.

    Returns:
        tuple: RGB images, uint8 (num_images, size, size, 3), and labels, int64 (num_images,).
    """
    if split not in _SPLIT_CODES:
        raise ValueError(f'split must be one of {tuple(_SPLIT_CODES)}, got {split!r}')
    labels = np.arange(num_images, dtype=np.int64) % len(PROXY_CLASSES)
    images = np.stack([
        make_proxy_image(np.random.default_rng([seed, _SPLIT_CODES[split], i]), int(label),
                         size) for i, label in enumerate(labels)
    ]) if num_images else np.zeros((0, size, size, 3), np.uint8)
    return images, labels


class ProxyClassifier(nn.Module):
    """mmdet's ResNet, global average pooling and a linear classifier.

    Args:
        num_classes: Number of classes. Defaults to ``len(PROXY_CLASSES)``.
        backbone: Arguments of ``mmdet.models.backbones.ResNet``. Defaults to
            :data:`BACKBONE` (the demo teacher's ResNet-18, BN in train mode).
    """

    def __init__(self, num_classes: int = len(PROXY_CLASSES),
                 backbone: Optional[dict] = None) -> None:
        super().__init__()
        # PyTorch's default initialization (ResNet.init_weights would log every tensor).
        self.backbone = ResNet(**(backbone or BACKBONE))
        self.classifier = nn.Linear(self.backbone.feat_dim, num_classes)

    def forward(self, images: Tensor) -> Tensor:
        """Class logits (N, num_classes) of normalized images (N, 3, H, W)."""
        features = self.backbone(images)[-1]
        return self.classifier(features.mean(dim=(2, 3)))


def normalize(images: np.ndarray) -> Tensor:
    """uint8 RGB images (N, H, W, 3) as the detector's normalized input, float (N, 3, H, W)."""
    tensor = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    mean = torch.tensor(PIXEL_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(PIXEL_STD).view(1, 3, 1, 1)
    return (tensor - mean) / std


@torch.no_grad()
def accuracy(model: ProxyClassifier, images: np.ndarray, labels: np.ndarray,
             batch_size: int = 128) -> float:
    """Top-1 accuracy of ``model`` (put in eval mode) on images (N, H, W, 3) uint8."""
    model.eval()
    correct = 0
    for start in range(0, len(images), batch_size):
        logits = model(normalize(images[start:start + batch_size]))
        correct += int((logits.argmax(1) == torch.from_numpy(
            labels[start:start + batch_size])).sum())
    return correct / max(len(images), 1)


def train_proxy_classifier(num_train: int = 4000, num_val: int = 500, img_size: int = 64,
                           steps: int = 400, batch_size: int = 32, lr: float = 2e-3,
                           weight_decay: float = 0.05, seed: int = 0,
                           log_interval: int = 50,
                           train_set: Optional[Tuple[np.ndarray, np.ndarray]] = None
                           ) -> Dict[str, Any]:
    """Trains a :class:`ProxyClassifier` on the texture task.

    AdamW with a linear warm-up over the first 5% of the steps, then cosine decay to zero;
    random horizontal flips; BN in train mode throughout, so its running statistics become
    those of the texture images.

    Args:
        num_train: Training images (generated with ``seed``). Defaults to 4000.
        num_val: Held-out images (the ``'val'`` split of ``seed``). Defaults to 500.
        img_size: Image side in pixels. Defaults to 64.
        steps: Optimizer steps. Defaults to 400.
        batch_size: Images per step. Defaults to 32.
        lr: Peak learning rate. Defaults to 2e-3.
        weight_decay: AdamW weight decay. Defaults to 0.05.
        seed: Seed of the data, the initialization and the batch order. Defaults to 0.
        log_interval: Steps between printed training losses; 0 prints none. Defaults to 50.
        train_set: Images and labels to train on instead of generating ``num_train``.

    Returns:
        dict: ``model`` (the trained classifier, eval mode), ``val_accuracy``,
        ``train_accuracy`` (on at most 500 training images), ``losses`` (the training loss
        of every step), ``seconds`` (training time) and ``params`` (the settings).
    """
    torch.manual_seed(seed)
    images, labels = train_set if train_set is not None else make_proxy_set(
        num_train, img_size, seed, 'train')
    val_images, val_labels = make_proxy_set(num_val, img_size, seed, 'val')
    model = ProxyClassifier()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    warmup = max(1, steps // 20)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(steps - warmup, 1)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    generator = torch.Generator().manual_seed(seed)
    order: List[int] = []
    losses = []
    start = time.time()
    model.train()
    for step in range(steps):
        if len(order) < batch_size:  # reshuffle each epoch; batches never straddle epochs
            order = torch.randperm(len(images), generator=generator).tolist()
        batch, order = order[:batch_size], order[batch_size:]
        inputs = normalize(images[batch])
        flip = torch.rand(len(batch), generator=generator) < 0.5
        inputs[flip] = inputs[flip].flip(-1)
        loss = nn.functional.cross_entropy(model(inputs), torch.from_numpy(labels[batch]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        if log_interval and (step + 1) % log_interval == 0:
            recent = np.mean(losses[-log_interval:])
            print(f'[proxy] step {step + 1}/{steps}  loss {recent:.3f}  '
                  f'{time.time() - start:.0f} s', flush=True)
    seconds = time.time() - start
    return dict(model=model, val_accuracy=accuracy(model, val_images, val_labels),
                train_accuracy=accuracy(model, images[:500], labels[:500]),
                losses=losses, seconds=seconds,
                params=dict(num_train=len(images), num_val=num_val, img_size=img_size,
                            steps=steps, batch_size=batch_size, lr=lr,
                            weight_decay=weight_decay, seed=seed))


def save_backbone_checkpoint(model: ProxyClassifier, path: str,
                             meta: Optional[Dict[str, Any]] = None) -> str:
    """Writes the backbone's weights (BN running statistics included) for a detector.

    The keys are those of mmdet's ``ResNet`` (``conv1.weight``, ``layer1.0.bn1.running_mean``,
    ...), as in torchvision's ImageNet checkpoints: a detector config loads them with
    ``backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=path))``. The file is written
    to a temporary name and renamed, so a killed run leaves no truncated checkpoint.

    Args:
        model: The trained classifier.
        path: Output ``.pth`` file; its folder is created.
        meta: Stored under ``meta`` (e.g. the settings and the held-out accuracy).

    Returns:
        str: ``path``.
    """
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    state_dict = {key: value.detach().cpu().clone()
                  for key, value in model.backbone.state_dict().items()}
    tmp = f'{path}.tmp'
    torch.save(dict(state_dict=state_dict, meta=dict(meta or {}, classes=PROXY_CLASSES)), tmp)
    os.replace(tmp, path)
    return path

