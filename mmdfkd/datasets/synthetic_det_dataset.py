"""A detection dataset of sampled targets only, for data-free training.

No image exists: each item is an image size and random target boxes. Before every training
iteration ``ImageSynthesisHook`` replaces the batch's ``inputs`` with images synthesized from the
frozen teachers, so the dataset gives a zero placeholder image of the right size. With
``draw_targets=False`` an item is only the image's meta information, and the synthesizer draws
the targets of the batches it makes images for (:meth:`SyntheticDetDataset.sample_targets`).
"""
import copy
import numbers
import operator
from collections.abc import Sequence
from typing import Optional, Union

import numpy as np
import torch
from mmdet.registry import DATASETS, TASK_UTILS
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import HorizontalBoxes
from mmengine.structures import InstanceData
from torch.utils.data import Dataset

from .target_sampler import BoxTargetSampler


@DATASETS.register_module()
class SyntheticDetDataset(Dataset):
    """Images that exist only as a size and sampled target boxes.

    Item ``idx`` is drawn from ``np.random.default_rng([seed, idx])``, so it is the same in every
    epoch, worker and process, and a smaller dataset is a prefix of a larger one with the same
    seed. Items are what mmdet's ``PackDetInputs`` gives for an annotated image, so mmdet's
    ``pseudo_collate``, ``DetDataPreprocessor`` and detector losses take them unchanged::

        dict(inputs=torch.zeros(3, H, W, dtype=torch.uint8),  # placeholder, to be synthesized
             data_samples=DetDataSample(
                 gt_instances=InstanceData(bboxes=HorizontalBoxes (K, 4), labels=long (K,)),
                 ignored_instances=InstanceData(bboxes=HorizontalBoxes (0, 4), labels=long (0,)),
                 metainfo=dict(img_id=idx, img_path=f'synthetic://{idx}', ori_shape=(H, W),
                               img_shape=(H, W), scale_factor=(1.0, 1.0), flip=False,
                               flip_direction=None)))

    ``ignored_instances`` holds zero boxes rather than no fields because mmdet's assigners read
    its ``bboxes`` whenever it is present, as it always is after ``LoadAnnotations``.

    With ``draw_targets=False`` an item is ``dict(data_samples=DetDataSample(metainfo=...))``
    with the same metainfo and nothing else: no targets are sampled and no placeholder image is
    made for it. Inversion (``InversionSynthesizer``) starts new images only every few batches,
    and draws their targets with :meth:`sample_targets` then; the other batches' targets would
    be sampled for nothing.

    Example config::

        train_dataloader = dict(
            batch_size=8, num_workers=2, sampler=dict(type='InfiniteSampler', shuffle=True),
            dataset=dict(type='SyntheticDetDataset', num_images=100000, img_size=(256, 256),
                         metainfo=dict(classes=('cat', 'dog')),
                         sampler=dict(type='BoxTargetSampler', boxes_per_image=(1, 3))))

    Args:
        num_images (int): Number of items (the dataset length), at least 1.
        img_size (int | tuple[int, int]): Image size in pixels, ``(H, W)``, or one int for a
            square image. Defaults to (256, 256).
        metainfo (dict): Dataset meta information; must contain ``classes``, a non-empty
            sequence of class names, and may contain ``palette``, one RGB colour per class.
            Other keys are kept as given.
        sampler (dict, optional): Config of the target sampler built from
            ``mmdet.registry.TASK_UTILS``; ``type`` defaults to ``'BoxTargetSampler'`` and
            ``num_classes`` to ``len(metainfo['classes'])``. Defaults to None (a
            ``BoxTargetSampler`` with its defaults: one box per image).
        seed (int): Non-negative seed of the targets. Defaults to 0.
        test_mode (bool): Kept as ``self.test_mode`` for code that reads it from mmengine
            datasets; the items do not depend on it. Defaults to False.
        draw_targets (bool): Whether items carry their targets and a placeholder image; False
            gives the image meta information only. Defaults to True.

    Raises:
        ValueError: If an argument is invalid, the sampler's ``num_classes`` differs from the
            number of classes, or the sampler cannot draw targets for ``img_size`` (e.g.
            ``BoxTargetSampler`` boxes under 2 px).
    """

    def __init__(self,
                 num_images: int,
                 img_size: Union[int, tuple[int, int]] = (256, 256),
                 *,
                 metainfo: dict,
                 sampler: Optional[dict] = None,
                 seed: int = 0,
                 test_mode: bool = False,
                 draw_targets: bool = True) -> None:
        if not isinstance(num_images, numbers.Integral) or isinstance(num_images, bool) \
                or num_images < 1:
            raise ValueError(f'SyntheticDetDataset: num_images must be a positive integer, '
                             f'got {num_images!r}.')
        self.num_images = int(num_images)

        if isinstance(img_size, numbers.Integral) and not isinstance(img_size, bool):
            img_size = (img_size, img_size)
        if (not isinstance(img_size, Sequence) or len(img_size) != 2
                or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0
                           for v in img_size)):
            raise ValueError(f'SyntheticDetDataset: img_size must be a positive integer or an '
                             f'(H, W) pair of positive integers, got {img_size!r}.')
        self.img_size = (int(img_size[0]), int(img_size[1]))

        self._metainfo = self._check_metainfo(metainfo)
        num_classes = len(self._metainfo['classes'])

        if sampler is None:
            sampler = {}
        if not isinstance(sampler, dict):
            raise ValueError(f'SyntheticDetDataset: sampler must be a config dict of a target '
                             f'sampler, got {type(sampler).__name__}.')
        sampler_cfg = dict(sampler)
        sampler_cfg.setdefault('type', BoxTargetSampler.__name__)
        if sampler_cfg.setdefault('num_classes', num_classes) != num_classes:
            raise ValueError(f'SyntheticDetDataset: sampler.num_classes '
                             f'({sampler_cfg["num_classes"]}) differs from the {num_classes} '
                             f'classes in metainfo; remove it from the sampler config or make '
                             f'them equal.')
        self.sampler = TASK_UTILS.build(sampler_cfg)

        if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f'SyntheticDetDataset: seed must be a non-negative integer, '
                             f'got {seed!r}.')
        self.seed = int(seed)
        self.test_mode = test_mode
        if not isinstance(draw_targets, bool):
            raise ValueError(f'SyntheticDetDataset: draw_targets must be True or False, got '
                             f'{draw_targets!r}.')
        self.draw_targets = draw_targets
        # Draw item 0 now, so that a sampler that cannot fill images of img_size (e.g. boxes
        # under 2 px in 4x4 images) fails when the dataset is built, whatever its type.
        try:
            self.sample_targets(0)
        except ValueError as exc:
            raise ValueError(f'SyntheticDetDataset (img_size={self.img_size}): {exc}') from exc

    @staticmethod
    def _check_metainfo(metainfo: dict) -> dict:
        if not isinstance(metainfo, dict) or 'classes' not in metainfo:
            raise ValueError(f'SyntheticDetDataset: metainfo must be a dict with a "classes" '
                             f'entry, e.g. dict(classes=("cat", "dog")), got {metainfo!r}.')
        classes = metainfo['classes']
        if (isinstance(classes, str) or not isinstance(classes, Sequence) or not classes
                or not all(isinstance(name, str) for name in classes)):
            raise ValueError(f'SyntheticDetDataset: metainfo["classes"] must be a non-empty '
                             f'sequence of class names, got {classes!r}.')
        metainfo = copy.deepcopy(dict(metainfo))
        metainfo['classes'] = tuple(classes)
        palette = metainfo.get('palette')
        if palette is not None and len(palette) != len(classes):
            raise ValueError(f'SyntheticDetDataset: metainfo["palette"] must give one colour per '
                             f'class ({len(classes)}), got {len(palette)}.')
        return metainfo

    @property
    def metainfo(self) -> dict:
        """dict: A copy of the meta information; ``classes`` is a tuple."""
        return copy.deepcopy(self._metainfo)

    def __len__(self) -> int:
        return self.num_images

    def _index(self, idx: int) -> int:
        index = operator.index(idx)
        if index < 0:
            index += self.num_images
        if not 0 <= index < self.num_images:
            raise IndexError(f'SyntheticDetDataset: index {idx} is out of range for '
                             f'{self.num_images} images.')
        return index

    def sample_targets(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        """The targets of item ``idx``, the same as :meth:`__getitem__` packs.

        Args:
            idx (int): Item index; negative values count from the end.

        Returns:
            tuple[np.ndarray, np.ndarray]: ``boxes`` (K, 4) float32 ``x1, y1, x2, y2`` in pixels
            and ``labels`` (K,) int64 class indices.

        Raises:
            IndexError: If ``idx`` is out of range.
        """
        rng = np.random.default_rng([self.seed, self._index(idx)])
        return self.sampler.sample(rng, self.img_size)

    def __getitem__(self, idx: int) -> dict:
        """Item ``idx`` in ``PackDetInputs`` format (see the class docstring).

        Args:
            idx (int): Item index; negative values count from the end.

        Returns:
            dict: ``inputs``, a zero uint8 tensor of shape (3, H, W), and ``data_samples``, a
            ``DetDataSample`` carrying the targets and image meta information; with
            ``draw_targets=False`` only ``data_samples``, with the meta information only.
        """
        index = self._index(idx)
        height, width = self.img_size
        data_sample = DetDataSample(metainfo=dict(
            img_id=index, img_path=f'synthetic://{index}', ori_shape=(height, width),
            img_shape=(height, width), scale_factor=(1.0, 1.0), flip=False,
            flip_direction=None))
        if not self.draw_targets:
            return dict(data_samples=data_sample)
        boxes, labels = self.sample_targets(index)
        data_sample.gt_instances = InstanceData(bboxes=HorizontalBoxes(torch.from_numpy(boxes)),
                                                labels=torch.from_numpy(labels))
        data_sample.ignored_instances = InstanceData(
            bboxes=HorizontalBoxes(torch.zeros((0, 4), dtype=torch.float32)),
            labels=torch.zeros((0,), dtype=torch.int64))
        return dict(inputs=torch.zeros((3, height, width), dtype=torch.uint8),
                    data_samples=data_sample)
