"""A small COCO-format detection dataset of shapes, made deterministically from a seed.

The demo dataset lets the whole pipeline (teacher training, data-free distillation, evaluation)
run on a CPU without downloading anything. Each image is a textured background (a random mixture
of low-frequency colour noise, stripes, checkerboards and gradients) with 1 to 6 solid-coloured
objects (by default) painted on it. The class of an object is given only by its shape (see
:data:`SHAPES_CLASSES`); colours are random and chosen to contrast with what lies under the object.

Layout written by :func:`make_shapes_coco`::

    OUT/train/000001.png ...                  RGB uint8 PNG
    OUT/val/000001.png ...
    OUT/annotations/instances_train.json      COCO detection annotations
    OUT/annotations/instances_val.json
    OUT/meta.json                             generation parameters and summary

``file_name`` in the annotation files is relative to the split folder, so an mmdet ``CocoDataset``
reads it with ``data_root='OUT/'``, ``ann_file='annotations/instances_train.json'``,
``data_prefix=dict(img='train/')`` and ``metainfo=dict(classes=SHAPES_CLASSES)``.

Annotation conventions:

* Shapes are always placed wholly inside the image; later objects are painted over earlier ones.
* ``bbox`` is the tight box ``[x, y, w, h]`` of the *full* rasterised shape, occluded parts
  included (an amodal box), in pixel units: it covers pixel columns ``x`` to ``x + w - 1``.
* An object whose visible fraction (see :func:`visible_fractions`) would fall below
  ``min_visible`` is dropped: neither annotated nor painted, so no unannotated fragment of a shape
  is left in the image, and every box frames an object that is mostly visible, which keeps the
  amodal box unambiguous. The last object laid out is never occluded, so every image keeps at
  least one annotation.
* ``area`` is the number of visible pixels of the object, as COCO's segmentation area would be.

Every image is drawn from its own random stream seeded by ``(seed, split, index)``: the same
seed gives byte-identical annotation files and identical pixels, and a smaller dataset is a
prefix of a larger one with the same seed.
"""
import json
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

SHAPES_CLASSES = ('rectangle', 'ellipse', 'triangle', 'cross', 'star', 'ring')
"""Class names in category-id order (category id = index + 1)."""

# Bump whenever a change alters the generated images or annotations, so that an existing dataset
# written by an older version is reported as a parameter mismatch instead of silently reused.
FORMAT_VERSION = 1

_SPLIT_CODES = {'train': 0, 'val': 1}
# Points used to approximate curved outlines; enough for smooth edges at 256 px.
_CURVE_POINTS = 64
# Fixed-point fractional bits for cv2.fillPoly, so vertices keep sub-pixel precision.
_SHIFT = 4
# Largest per-channel amplitude of one background texture component; bounding it keeps the
# background calm enough for a contrasting object colour to exist.
_TEXTURE_AMPLITUDE = 50.0
_MIN_OBJECT_PIXELS = 8


def visible_fractions(masks: Sequence[np.ndarray]) -> np.ndarray:
    """Fraction of each object that stays visible after all objects are painted.

    Objects are painted in list order, so a pixel of ``masks[i]`` is hidden when any later mask
    ``masks[j]`` (``j > i``) covers it.

    Args:
        masks (Sequence[np.ndarray]): Boolean or 0/1 masks of shape (H, W), one per object, in
            paint order. Every mask must contain at least one pixel.

    Returns:
        np.ndarray: Float64 array of shape (len(masks),) with values in [0, 1].

    Raises:
        ValueError: If a mask is empty or the masks differ in shape.
    """
    fractions = np.zeros(len(masks))
    if not masks:
        return fractions
    covered = np.zeros(np.shape(masks[0]), dtype=bool)
    for i in range(len(masks) - 1, -1, -1):
        mask = np.asarray(masks[i], dtype=bool)
        if mask.shape != covered.shape:
            raise ValueError(f'mask {i} has shape {mask.shape} but mask 0 has shape '
                             f'{covered.shape}; all masks must cover the same image.')
        total = np.count_nonzero(mask)
        if total == 0:
            raise ValueError(f'mask {i} is empty; the visible fraction of an object without '
                             'pixels is undefined, so leave it out of the list.')
        fractions[i] = np.count_nonzero(mask & ~covered) / total
        covered |= mask
    return fractions


def pick_contrasting_colour(rng: np.random.Generator, background: np.ndarray,
                            min_contrast: float = 60.0, num_candidates: int = 16) -> np.ndarray:
    """Pick a random colour that stands out from the pixels it will cover.

    The contrast of a colour is the 10th percentile of its RGB Euclidean distances to the
    background pixels, i.e. the object differs by at least that much from 90% of what lies under
    it (a plain mean would accept a colour equal to one square of a checkerboard). Random
    candidates are tried in order and the first with enough contrast is returned; if none has,
    the candidate or RGB-cube corner with the largest contrast is returned.

    Args:
        rng (np.random.Generator): Source of the random candidates.
        background (np.ndarray): Background pixels of shape (N, 3), N >= 1, values in [0, 255].
        min_contrast (float): Contrast to reach, in RGB units (0 to 441). Defaults to 60.
        num_candidates (int): Random colours to try. Defaults to 16.

    Returns:
        np.ndarray: Colour of shape (3,), dtype uint8.
    """
    background = np.asarray(background, dtype=np.float32).reshape(-1, 3)
    # A few hundred pixels estimate the percentile well and keep this cheap for big objects.
    background = background[::max(1, len(background) // 256)]
    randoms = rng.integers(0, 256, size=(num_candidates, 3)).astype(np.float32)
    corners = np.array([[r, g, b] for r in (0, 255) for g in (0, 255) for b in (0, 255)],
                       dtype=np.float32)
    candidates = np.concatenate([randoms, corners])
    distances = np.linalg.norm(candidates[:, None, :] - background[None, :, :], axis=-1)
    contrast = np.percentile(distances, 10, axis=1)
    good = np.flatnonzero(contrast[:num_candidates] >= min_contrast)
    best = good[0] if good.size else int(np.argmax(contrast))
    return candidates[best].astype(np.uint8)


def _unit_outline(rng: np.random.Generator, label: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Random outline of one shape class inside the unit box [-0.5, 0.5]^2.

    Returns:
        tuple[np.ndarray, np.ndarray | None]: The outer polygon of shape (N, 2) in (x, y) order
        and, for a ring, the hole polygon of shape (M, 2), else None.
    """
    name = SHAPES_CLASSES[label]
    angles = np.linspace(0.0, 2.0 * math.pi, _CURVE_POINTS, endpoint=False)
    circle = 0.5 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    if name == 'rectangle':
        return np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]]), None
    if name == 'ellipse':
        return circle, None
    if name == 'triangle':
        apex_x = rng.uniform(-0.3, 0.3)
        outline = np.array([[apex_x, -0.5], [0.5, 0.5], [-0.5, 0.5]])
        if rng.random() < 0.5:  # point down as often as up
            outline[:, 1] *= -1.0
        return outline, None
    if name == 'cross':
        t = rng.uniform(0.14, 0.2)  # half the arm thickness
        return np.array([[-t, -0.5], [t, -0.5], [t, -t], [0.5, -t], [0.5, t], [t, t],
                         [t, 0.5], [-t, 0.5], [-t, t], [-0.5, t], [-0.5, -t], [-t, -t]]), None
    if name == 'star':
        inner = rng.uniform(0.2, 0.26)
        star_angles = -0.5 * math.pi + np.arange(10) * math.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, 0.5, inner)
        outline = np.stack([radii * np.cos(star_angles), radii * np.sin(star_angles)], axis=1)
        # Centre the star's extent on the box so that scaling fills the requested size.
        outline -= (outline.max(axis=0) + outline.min(axis=0)) / 2
        return outline / (outline.max(axis=0) - outline.min(axis=0)), None
    # ring: an ellipse with an elliptical hole
    return circle, circle * rng.uniform(0.45, 0.6)


def _texture(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Random background of shape (H, W, 3), float32, values in [0, 255]."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.empty((height, width, 3), dtype=np.float32)
    image[:] = rng.uniform(40, 215, size=3)
    for kind in rng.choice(4, size=rng.integers(1, 4), replace=False):
        colour = rng.uniform(-_TEXTURE_AMPLITUDE, _TEXTURE_AMPLITUDE, size=3).astype(np.float32)
        theta = rng.uniform(0.0, math.pi)
        u = xs * math.cos(theta) + ys * math.sin(theta)
        if kind == 0:  # low-frequency colour noise: a coarse random grid, smoothly upsampled
            grid = rng.uniform(-1, 1, size=(rng.integers(2, 7), rng.integers(2, 7), 3))
            layer = cv2.resize(grid.astype(np.float32), (width, height),
                               interpolation=cv2.INTER_CUBIC) * colour
        elif kind == 1:  # stripes, smooth or hard-edged
            pattern = np.sin(u * (2.0 * math.pi / rng.uniform(8, 48)) + rng.uniform(0, 6.3))
            if rng.random() < 0.5:
                pattern = np.sign(pattern)
            layer = pattern[..., None] * colour
        elif kind == 2:  # checkerboard at a random angle
            v = ys * math.cos(theta) - xs * math.sin(theta)
            cell = math.pi / rng.uniform(8, 40)
            layer = np.sign(np.sin(u * cell) * np.sin(v * cell))[..., None] * colour
        else:  # linear gradient across the whole image
            ramp = (u - u.min()) / max(float(u.max() - u.min()), 1.0) * 2.0 - 1.0
            layer = ramp[..., None] * colour
        image += layer
    return np.clip(image, 0, 255)


def _render_image(rng: np.random.Generator, width: int, height: int,
                  objects_per_image: tuple[int, int], scale_range: tuple[float, float],
                  max_rotation: float, min_visible: float
                  ) -> tuple[np.ndarray, list[tuple[int, list[int], int]]]:
    """Draw one image and the objects painted on it.

    Object shapes are laid out first; those whose visible fraction would fall below
    ``min_visible`` are then left out altogether, so that no unannotated fragment of a shape
    remains in the image. Leaving an object out only uncovers the others, so every painted
    object stays at least ``min_visible`` visible.

    Returns:
        tuple[np.ndarray, list[tuple[int, list[int], int]]]: The RGB uint8 image of shape
        (H, W, 3) and, per painted object in paint order, ``(label, [x, y, w, h], visible_area)``.
    """
    image = np.round(_texture(rng, width, height)).astype(np.uint8)
    side = min(width, height)
    labels, masks = [], []
    for _ in range(rng.integers(objects_per_image[0], objects_per_image[1] + 1)):
        label = int(rng.integers(len(SHAPES_CLASSES)))
        outline, hole = _unit_outline(rng, label)
        # Log-uniform size and aspect ratio: small objects are as common as large ones.
        size = math.exp(rng.uniform(math.log(scale_range[0]), math.log(scale_range[1])))
        aspect = math.exp(rng.uniform(-math.log(2.0), math.log(2.0)))
        obj_w = side * min(max(size * math.sqrt(aspect), scale_range[0]), scale_range[1])
        obj_h = side * min(max(size / math.sqrt(aspect), scale_range[0]), scale_range[1])
        angle = math.radians(rng.uniform(-max_rotation, max_rotation))
        rotation = np.array([[math.cos(angle), -math.sin(angle)],
                             [math.sin(angle), math.cos(angle)]])
        outline = outline * (obj_w, obj_h) @ rotation.T
        low, high = outline.min(axis=0), outline.max(axis=0)
        centre = rng.uniform(-low, (width - 1, height - 1) - high)
        mask = np.zeros((height, width), dtype=np.uint8)
        cv2.fillPoly(mask, [np.round((outline + centre) * (1 << _SHIFT)).astype(np.int32)], 1,
                     shift=_SHIFT)
        if hole is not None:
            hole = hole * (obj_w, obj_h) @ rotation.T + centre
            cv2.fillPoly(mask, [np.round(hole * (1 << _SHIFT)).astype(np.int32)], 0,
                         shift=_SHIFT)
        labels.append(label)
        masks.append(mask)
    keep = np.flatnonzero(visible_fractions(masks) >= min_visible)
    masks = [masks[i] for i in keep]
    objects = []
    for i, (mask, fraction) in enumerate(zip(masks, visible_fractions(masks))):
        covered = mask.astype(bool)
        image[covered] = pick_contrasting_colour(rng, image[covered])
        objects.append((labels[keep[i]], list(cv2.boundingRect(mask)),
                        round(fraction * np.count_nonzero(mask))))
    return image, objects


def _write_png(path: Path, image: np.ndarray) -> None:
    """Write an RGB uint8 image as PNG (cv2 expects BGR channel order)."""
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f'cv2 could not write {path}; check that the folder is writable and the '
                      'disk is not full.')


def _write_split(root: Path, split: str, num_images: int, seed: int, width: int, height: int,
                 render_kwargs: dict) -> dict:
    """Write the images and annotation file of one split and return its summary."""
    (root / split).mkdir()
    digits = max(6, len(str(num_images)))
    images, annotations = [], []
    for index in range(num_images):
        rng = np.random.default_rng([seed, _SPLIT_CODES[split], index])
        image, objects = _render_image(rng, width, height, **render_kwargs)
        image_id = index + 1
        file_name = f'{image_id:0{digits}d}.png'
        _write_png(root / split / file_name, image)
        images.append(dict(id=image_id, file_name=file_name, width=width, height=height))
        for label, box, area in objects:
            annotations.append(dict(id=len(annotations) + 1, image_id=image_id,
                                    category_id=label + 1, bbox=[float(v) for v in box],
                                    area=float(area), iscrowd=0))
    coco = dict(
        info=dict(description=f'mmdfkd shapes demo dataset, {split} split',
                  version=str(FORMAT_VERSION)),
        licenses=[],
        images=images,
        annotations=annotations,
        categories=[dict(id=i + 1, name=name, supercategory='shape')
                    for i, name in enumerate(SHAPES_CLASSES)])
    (root / 'annotations' / f'instances_{split}.json').write_text(json.dumps(coco))
    per_class = {name: 0 for name in SHAPES_CLASSES}
    for ann in annotations:
        per_class[SHAPES_CLASSES[ann['category_id'] - 1]] += 1
    return dict(images=len(images), annotations=len(annotations), per_class=per_class)


def make_shapes_coco(out_dir: str | os.PathLike,
                     num_train: int = 1000,
                     num_val: int = 200,
                     img_size: int | tuple[int, int] = 256,
                     seed: int = 0,
                     objects_per_image: tuple[int, int] = (1, 6),
                     scale_range: tuple[float, float] = (0.08, 0.5),
                     max_rotation: float = 15.0,
                     min_visible: float = 0.4,
                     overwrite: bool = False) -> dict:
    """Generate the shapes demo dataset in COCO format, or reuse an identical existing one.

    The dataset is written to a temporary sibling folder that is renamed to ``out_dir`` only once
    complete, so an interrupted run never leaves a partial dataset under ``out_dir``.
    ``out_dir/meta.json`` records the parameters; a later call with the same parameters returns
    at once without touching the files.

    Args:
        out_dir (str | os.PathLike): Dataset root to create.
        num_train (int): Training images. Defaults to 1000.
        num_val (int): Validation images. Defaults to 200.
        img_size (int | tuple[int, int]): Image side, or ``(width, height)``. Defaults to 256.
        seed (int): Seed of everything random. Defaults to 0.
        objects_per_image (tuple[int, int]): Inclusive range of objects painted per image.
            Defaults to (1, 6), before heavily occluded objects are dropped.
        scale_range (tuple[float, float]): Range of object width and height as a fraction of
            the shorter image side. Defaults to (0.08, 0.5).
        max_rotation (float): Largest rotation of an object in degrees, either way.
            Defaults to 15.
        min_visible (float): Objects whose visible fraction would be below this are dropped
            from the image and the annotations. Defaults to 0.4.
        overwrite (bool): Replace an existing ``out_dir`` generated with other parameters (or
            not by this function). Defaults to False.

    Returns:
        dict: Summary with keys ``out_dir`` (str), ``classes`` (list[str]), ``reused`` (bool,
        True when an existing dataset was kept), and ``train`` / ``val``, each a dict with
        ``images`` (int), ``annotations`` (int) and ``per_class`` (dict[str, int]).

    Raises:
        ValueError: If a parameter is out of range.
        FileExistsError: If ``out_dir`` exists, is not an empty folder, and does not hold a
            dataset generated with the same parameters, unless ``overwrite`` is True.
    """
    width, height = (img_size, img_size) if isinstance(img_size, int) else img_size
    _check_params(num_train, num_val, width, height, seed, objects_per_image, scale_range,
                  max_rotation, min_visible)
    out = Path(out_dir)
    params = dict(format_version=FORMAT_VERSION, num_train=num_train, num_val=num_val,
                  width=width, height=height, seed=seed,
                  objects_per_image=list(objects_per_image), scale_range=list(scale_range),
                  max_rotation=max_rotation, min_visible=min_visible)
    # Round-trip through JSON so that the comparison with a stored meta.json is like for like.
    params = json.loads(json.dumps(params))
    meta_path = out / 'meta.json'
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get('params') == params:
            return dict(out_dir=str(out), reused=True, **meta['summary'])
        if not overwrite:
            stored = meta.get('params', {})
            diff = '; '.join(f'{k} was {stored.get(k)!r}, now {v!r}' for k, v in params.items()
                             if stored.get(k) != v)
            raise FileExistsError(
                f'{out} holds a shapes dataset generated with other parameters ({diff}); '
                'choose a different output folder (--out) or pass --overwrite '
                '(overwrite=True) to replace it.')
    elif out.exists() and not overwrite and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(
            f'{out} exists but has no meta.json, so it is not a complete shapes dataset; '
            'choose a different output folder (--out) or pass --overwrite (overwrite=True) to '
            'replace it.')

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f'.{out.name}.tmp-', dir=out.parent))
    try:
        (tmp / 'annotations').mkdir()
        render_kwargs = dict(objects_per_image=tuple(objects_per_image),
                             scale_range=tuple(scale_range), max_rotation=max_rotation,
                             min_visible=min_visible)
        summary = dict(classes=list(SHAPES_CLASSES))
        for split, num_images in (('train', num_train), ('val', num_val)):
            summary[split] = _write_split(tmp, split, num_images, seed, width, height,
                                          render_kwargs)
        (tmp / 'meta.json').write_text(json.dumps(dict(params=params, summary=summary),
                                                  indent=2))
        if out.exists() or out.is_symlink():
            if out.is_dir() and not out.is_symlink():
                shutil.rmtree(out)
            else:
                out.unlink()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dict(out_dir=str(out), reused=False, **summary)


def _check_params(num_train: int, num_val: int, width: int, height: int, seed: int,
                  objects_per_image: tuple[int, int], scale_range: tuple[float, float],
                  max_rotation: float, min_visible: float) -> None:
    """Raise ValueError naming the first out-of-range argument of make_shapes_coco."""
    if num_train < 1 or num_val < 1:
        raise ValueError(f'num_train and num_val must be at least 1, got {num_train} and '
                         f'{num_val}.')
    if seed < 0:
        raise ValueError(f'seed must be a non-negative integer (numpy seeds), got {seed}.')
    low, high = scale_range
    if not 0 < low <= high <= 0.6:
        raise ValueError(f'scale_range must satisfy 0 < low <= high <= 0.6 (so that rotated '
                         f'objects fit in the image), got {tuple(scale_range)}.')
    if low * min(width, height) < _MIN_OBJECT_PIXELS:
        raise ValueError(
            f'the smallest objects would be {low * min(width, height):.1f} px for an image of '
            f'{width}x{height} and scale_range {tuple(scale_range)}; raise img_size or '
            f'scale_range[0] so that they are at least {_MIN_OBJECT_PIXELS} px.')
    if not 1 <= objects_per_image[0] <= objects_per_image[1]:
        raise ValueError(f'objects_per_image must be (low, high) with 1 <= low <= high, got '
                         f'{tuple(objects_per_image)}.')
    if not 0 <= max_rotation <= 45:
        raise ValueError(f'max_rotation must be in [0, 45] degrees, got {max_rotation}.')
    if not 0 < min_visible <= 1:
        raise ValueError(f'min_visible must be in (0, 1], got {min_visible}.')
