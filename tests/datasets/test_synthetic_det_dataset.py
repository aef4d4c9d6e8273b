"""Tests of the target sampler and the synthetic detection dataset of data-free training."""
import itertools

import numpy as np
import pytest
import torch
from mmdet.registry import DATASETS, MODELS, TASK_UTILS
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.utils import register_all_modules
from mmengine.dataset import DefaultSampler, InfiniteSampler, pseudo_collate
from torch.utils.data import DataLoader

from mmdfkd.datasets.synthetic_det_dataset import SyntheticDetDataset
from mmdfkd.datasets.target_sampler import BoxTargetSampler, box_iou

register_all_modules()

CLASSES = ('a', 'b', 'c', 'd', 'e', 'f')
METAINFO = dict(classes=CLASSES)
# Neither side a multiple of 32, so padding by the data preprocessor shows.
IMG_HW = (100, 120)


def _sample_many(sampler: BoxTargetSampler, img_hw, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [sampler.sample(rng, img_hw) for _ in range(n)]


def _check_inside(boxes: np.ndarray, img_hw) -> None:
    height, width = img_hw
    assert boxes.dtype == np.float32 and boxes.ndim == 2 and boxes.shape[1] == 4
    assert np.all(boxes[:, :2] >= 0)
    assert np.all(boxes[:, 2] <= width) and np.all(boxes[:, 3] <= height)
    assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])


def _pairwise_ious(boxes: np.ndarray) -> list:
    return [float(box_iou(boxes[i].astype(np.float64), boxes[j:j + 1].astype(np.float64))[0])
            for i, j in itertools.combinations(range(len(boxes)), 2)]


# ---------------------------------------------------------------------------------------------
# BoxTargetSampler
# ---------------------------------------------------------------------------------------------


def test_sampler_defaults_are_one_box_with_a_valid_class():
    samples = _sample_many(BoxTargetSampler(num_classes=3), (64, 64), 200)
    for boxes, labels in samples:
        assert boxes.shape == (1, 4) and labels.shape == (1,) and labels.dtype == np.int64
        _check_inside(boxes, (64, 64))
    assert {int(labels[0]) for _, labels in samples} == {0, 1, 2}


def test_sampler_counts_cover_the_inclusive_range():
    sampler = BoxTargetSampler(num_classes=2, boxes_per_image=(2, 5), size_range=(0.1, 0.2),
                               max_overlap=1.0)
    samples = _sample_many(sampler, IMG_HW, 300)
    counts = [len(boxes) for boxes, _ in samples]
    assert set(counts) == {2, 3, 4, 5}
    for boxes, labels in samples:
        assert len(labels) == len(boxes)
        _check_inside(boxes, IMG_HW)


@pytest.mark.parametrize('img_hw', [(90, 160), (160, 90)])
def test_sampler_sizes_and_aspects_follow_their_ranges(img_hw):
    # Boxes elongated along the short image side may be clipped to it (0.6 * 90 * 2 > 90), which
    # shrinks them; the lower bounds hold for the boxes that were not clipped.
    size_range, aspect_range = (0.3, 0.6), (0.25, 4.0)
    sampler = BoxTargetSampler(num_classes=1, size_range=size_range, aspect_range=aspect_range)
    boxes = np.concatenate([b for b, _ in _sample_many(sampler, img_hw, 2000)])
    _check_inside(boxes, img_hw)
    w, h = (boxes[:, 2] - boxes[:, 0]).astype(np.float64), (boxes[:, 3] - boxes[:, 1])
    clipped = (w >= img_hw[1] - 1e-3) | (h >= img_hw[0] - 1e-3)
    size = np.sqrt(w * h) / min(img_hw)
    aspect = w / h
    assert np.all(size <= size_range[1] + 1e-4)
    kept = ~clipped
    assert kept.mean() > 0.5
    assert np.all(size[kept] >= size_range[0] - 1e-4)
    assert aspect[kept].min() >= aspect_range[0] - 1e-4
    assert aspect[kept].max() <= aspect_range[1] + 1e-4
    # The whole ranges are used, sizes uniformly and aspects log-uniformly (a uniform aspect in
    # [0.25, 4] would be below 1 only 20% of the time).
    assert size[kept].min() < 0.31 and size[kept].max() > 0.59
    assert abs(np.mean(size[kept]) - 0.45) < 0.01
    assert aspect[kept].min() < 0.27 and aspect[kept].max() > 3.7
    assert abs(np.mean(aspect[kept] < 1) - 0.5) < 0.05


def test_sampler_clips_boxes_longer_than_the_image():
    # Every drawn width (at least 45 * 2) exceeds the image width.
    sampler = BoxTargetSampler(num_classes=1, size_range=(0.9, 1.0), aspect_range=(4.0, 5.0))
    boxes = np.concatenate([b for b, _ in _sample_many(sampler, (50, 80), 100)])
    _check_inside(boxes, (50, 80))
    np.testing.assert_allclose(boxes[:, 0], 0, atol=1e-4)
    np.testing.assert_allclose(boxes[:, 2], 80, atol=1e-4)
    assert np.all(np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])) <= 50.0)


def _chi_square(counts: np.ndarray, probs: np.ndarray) -> float:
    expected = probs * counts.sum()
    return float(((counts - expected) ** 2 / expected).sum())


@pytest.mark.parametrize('weights', [None, (1.0, 2.0, 0.0, 5.0)])
def test_sampler_class_frequencies_follow_the_weights(weights):
    sampler = BoxTargetSampler(num_classes=4, class_weights=weights)
    labels = np.concatenate([lab for _, lab in _sample_many(sampler, (32, 32), 4000)])
    counts = np.bincount(labels, minlength=4)
    probs = np.full(4, 0.25) if weights is None else np.asarray(weights) / sum(weights)
    if weights is not None:
        assert counts[2] == 0
    nonzero = probs > 0
    # 18.5 is the 99.95% quantile of chi-square with 3 degrees of freedom; ignoring the weights
    # (counts near 1000 each) would give a statistic above 1000.
    assert _chi_square(counts[nonzero], probs[nonzero]) < 18.5


@pytest.mark.parametrize('max_overlap', [0.0, 0.3])
def test_sampler_limits_overlap_between_boxes_of_an_image(max_overlap):
    sampler = BoxTargetSampler(num_classes=2, boxes_per_image=4, size_range=(0.2, 0.5),
                               max_overlap=max_overlap)
    samples = _sample_many(sampler, IMG_HW, 150)
    ious = [iou for boxes, _ in samples for iou in _pairwise_ious(boxes)]
    assert len(ious) > 300
    assert max(ious) <= max_overlap + 1e-6
    assert sum(len(boxes) == 4 for boxes, _ in samples) > 50


def test_sampler_gives_up_on_a_full_image_but_keeps_one_box():
    # Two boxes covering 90% of a square image cannot be disjoint.
    sampler = BoxTargetSampler(num_classes=2, boxes_per_image=3, size_range=(0.9, 1.0),
                               max_overlap=0.0, max_tries=5)
    for boxes, labels in _sample_many(sampler, (40, 40), 20):
        assert boxes.shape == (1, 4) and labels.shape == (1,)


def test_sampler_result_depends_only_on_the_generator_state():
    sampler = BoxTargetSampler(num_classes=5, boxes_per_image=(1, 4))
    first = sampler.sample(np.random.default_rng(7), IMG_HW)
    again = sampler.sample(np.random.default_rng(7), IMG_HW)
    other = sampler.sample(np.random.default_rng(8), IMG_HW)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert first[0].shape != other[0].shape or not np.array_equal(first[0], other[0])


@pytest.mark.parametrize('kwargs, message', [
    (dict(num_classes=0), 'num_classes must be a positive integer'),
    (dict(num_classes=2.0), 'num_classes must be a positive integer'),
    (dict(boxes_per_image=0), 'boxes_per_image'),
    (dict(boxes_per_image=(3, 2)), '1 <= min <= max'),
    (dict(boxes_per_image=(1, 2, 3)), 'boxes_per_image'),
    (dict(size_range=(0.0, 0.5)), r'size_range must satisfy 0 < min <= max <= 1.0'),
    (dict(size_range=(0.5, 1.5)), r'size_range must satisfy 0 < min <= max <= 1.0'),
    (dict(size_range=0.5), r'size_range must be a \(min, max\) pair'),
    (dict(aspect_range=(2.0, 0.5)), 'aspect_range must satisfy'),
    (dict(aspect_range=(-1.0, 2.0)), 'aspect_range must satisfy'),
    (dict(class_weights=(1.0, 2.0)), r'one weight per class \(3\), got shape \(2,\)'),
    (dict(class_weights=(1.0, -1.0, 1.0)), 'non-negative'),
    (dict(class_weights=(0.0, 0.0, 0.0)), 'not all zero'),
    (dict(max_overlap=1.5), r'max_overlap must be an IoU in \[0, 1\]'),
    (dict(max_tries=0), 'max_tries must be a positive integer'),
])
def test_sampler_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BoxTargetSampler(**{'num_classes': 3, **kwargs})


def test_images_too_small_for_2px_boxes_are_refused_when_the_dataset_is_built():
    sampler = dict(type='BoxTargetSampler', size_range=(0.12, 0.55))  # the demo's boxes
    with pytest.raises(ValueError) as info:
        _dataset(img_size=4, sampler=sampler)
    message = str(info.value)
    assert message.startswith('SyntheticDetDataset (img_size=(4, 4)): BoxTargetSampler: in 4x4 '
                              'images, size_range (0.12, 0.55) and aspect_range (0.5, 2.0) give '
                              'boxes as small as 0.34 px on a side; boxes need at least 2 px')
    assert 'at least 24 px on the shorter side' in message
    assert 'size_range[0]' not in message  # no size_range up to 0.55 would do at 4x4
    with pytest.raises(ValueError, match=r'raise size_range\[0\] to 0\.18 or more'):
        _dataset(img_size=(16, 40), sampler=sampler)
    assert len(_dataset(img_size=24, sampler=sampler)) == 8


def test_sampler_rejects_bad_image_size():
    with pytest.raises(ValueError, match=r'img_hw must be a \(height, width\) pair'):
        BoxTargetSampler(num_classes=1).sample(np.random.default_rng(0), (0, 10))


def test_sampler_builds_from_the_registry():
    sampler = TASK_UTILS.build(dict(type='BoxTargetSampler', num_classes=4,
                                    boxes_per_image=(1, 3), class_weights=[0, 1, 0, 0]))
    assert isinstance(sampler, BoxTargetSampler)
    assert sampler.boxes_per_image == (1, 3)
    _, labels = sampler.sample(np.random.default_rng(0), IMG_HW)
    assert np.all(labels == 1)


# ---------------------------------------------------------------------------------------------
# SyntheticDetDataset
# ---------------------------------------------------------------------------------------------


def _dataset(**kwargs) -> SyntheticDetDataset:
    args = dict(num_images=8, img_size=IMG_HW, metainfo=METAINFO,
                sampler=dict(type='BoxTargetSampler', boxes_per_image=(1, 4)))
    args.update(kwargs)
    return SyntheticDetDataset(**args)


def _targets(item: dict):
    instances = item['data_samples'].gt_instances
    return instances.bboxes.tensor.numpy(), instances.labels.numpy()


def test_dataset_items_are_deterministic_per_seed_and_index():
    first, again = _dataset(), _dataset(num_images=20)
    other_seed = _dataset(seed=1)
    for idx in range(8):
        boxes, labels = _targets(first[idx])
        again_boxes, again_labels = _targets(again[idx])
        np.testing.assert_array_equal(boxes, again_boxes)
        np.testing.assert_array_equal(labels, again_labels)
        sampled = first.sample_targets(idx)
        np.testing.assert_array_equal(boxes, sampled[0])
        np.testing.assert_array_equal(labels, sampled[1])
        expected = first.sampler.sample(np.random.default_rng([0, idx]), IMG_HW)
        np.testing.assert_array_equal(boxes, expected[0])
        other_boxes, _ = _targets(other_seed[idx])
        assert boxes.shape != other_boxes.shape or not np.array_equal(boxes, other_boxes)
    all_boxes = [_targets(first[idx])[0] for idx in range(8)]
    assert len({b.tobytes() for b in all_boxes}) == 8


def test_dataset_item_is_what_pack_det_inputs_gives():
    ds = _dataset()
    item = ds[3]
    assert set(item) == {'inputs', 'data_samples'}
    inputs, sample = item['inputs'], item['data_samples']
    assert inputs.shape == (3, *IMG_HW) and inputs.dtype == torch.uint8
    assert not inputs.any()
    assert isinstance(sample, DetDataSample)
    assert sample.metainfo == dict(img_id=3, img_path='synthetic://3', ori_shape=IMG_HW,
                                   img_shape=IMG_HW, scale_factor=(1.0, 1.0), flip=False,
                                   flip_direction=None)
    gt = sample.gt_instances
    assert isinstance(gt.bboxes, HorizontalBoxes) and gt.bboxes.tensor.dtype == torch.float32
    assert gt.labels.dtype == torch.long and len(gt.labels) == len(gt.bboxes) >= 1
    assert int(gt.labels.min()) >= 0 and int(gt.labels.max()) < len(CLASSES)
    ignored = sample.ignored_instances
    assert isinstance(ignored.bboxes, HorizontalBoxes) and ignored.bboxes.tensor.shape == (0, 4)
    assert ignored.labels.dtype == torch.long and ignored.labels.shape == (0,)
    assert ds[-1]['data_samples'].img_id == 7
    with pytest.raises(IndexError, match='index 8 is out of range for 8 images'):
        ds[8]


def test_items_without_targets_carry_the_same_meta_information_only():
    with_targets, without = _dataset(), _dataset(draw_targets=False)
    for idx in range(8):
        item = without[idx]
        assert set(item) == {'data_samples'}  # no placeholder image
        sample = item['data_samples']
        assert sample.metainfo == with_targets[idx]['data_samples'].metainfo
        assert 'gt_instances' not in sample and 'ignored_instances' not in sample
        # The targets it would carry, drawn when asked.
        np.testing.assert_array_equal(without.sample_targets(idx)[0],
                                      _targets(with_targets[idx])[0])
    batch = pseudo_collate([without[0], without[1]])
    assert set(batch) == {'data_samples'} and [s.img_id for s in batch['data_samples']] == [0, 1]


def _tiny_retinanet() -> torch.nn.Module:
    channels = 32
    return MODELS.build(dict(
        type='RetinaNet',
        backbone=dict(type='ResNet', depth=18, num_stages=4, out_indices=(1, 2, 3),
                      norm_cfg=dict(type='BN', requires_grad=True), style='pytorch',
                      init_cfg=None),
        neck=dict(type='FPN', in_channels=[128, 256, 512], out_channels=channels,
                  start_level=0, add_extra_convs='on_input', num_outs=5),
        bbox_head=dict(
            type='RetinaHead', num_classes=len(CLASSES), in_channels=channels, stacked_convs=1,
            feat_channels=channels,
            anchor_generator=dict(type='AnchorGenerator', octave_base_scale=4,
                                  scales_per_octave=3, ratios=[0.5, 1.0, 2.0],
                                  strides=[8, 16, 32, 64, 128]),
            bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4,
                            target_stds=[1.0] * 4),
            loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                          loss_weight=1.0),
            loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
        train_cfg=dict(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.4,
                                     min_pos_iou=0, ignore_iof_thr=-1),
                       sampler=dict(type='PseudoSampler'), allowed_border=-1, pos_weight=-1,
                       debug=False)))


def test_dataset_items_pass_the_data_preprocessor_and_a_retinanet_loss():
    ds = _dataset()
    preprocessor = MODELS.build(dict(type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
                                     std=[58.395, 57.12, 57.375], bgr_to_rgb=True,
                                     pad_size_divisor=32))
    data = preprocessor(pseudo_collate([ds[0], ds[1]]), training=True)
    assert data['inputs'].shape == (2, 3, 128, 128)
    assert data['data_samples'][0].batch_input_shape == (128, 128)
    torch.manual_seed(0)
    model = _tiny_retinanet()
    losses = model.loss(data['inputs'], data['data_samples'])
    assert set(losses) == {'loss_cls', 'loss_bbox'}
    for name, values in losses.items():
        total = sum(v.sum() for v in values)
        assert torch.isfinite(total), name
        # Positive anchors exist only where the targets were understood as boxes.
        assert total > 0, name


@pytest.mark.parametrize('sampler_type', [DefaultSampler, InfiniteSampler])
def test_dataset_works_with_mmengine_samplers_and_pseudo_collate(sampler_type):
    ds = _dataset(num_images=7)
    loader = DataLoader(ds, batch_size=3, sampler=sampler_type(ds, shuffle=True, seed=1),
                        collate_fn=pseudo_collate)
    batches = list(itertools.islice(iter(loader), 3))
    ids = [sample.img_id for batch in batches for sample in batch['data_samples']]
    assert sorted(ids[:7]) == list(range(7))
    assert ids[:7] != list(range(7))
    for batch in batches:
        assert len(batch['inputs']) == len(batch['data_samples'])
        for inputs, sample in zip(batch['inputs'], batch['data_samples']):
            assert inputs.shape == (3, *IMG_HW)
            np.testing.assert_array_equal(sample.gt_instances.bboxes.tensor.numpy(),
                                          ds.sample_targets(sample.img_id)[0])


def test_dataset_len_and_metainfo():
    palette = [(i, i, i) for i in range(len(CLASSES))]
    ds = _dataset(num_images=5, metainfo=dict(classes=list(CLASSES), palette=palette))
    assert len(ds) == 5
    meta = ds.metainfo
    assert meta == dict(classes=CLASSES, palette=palette)
    meta['classes'] = ('x',)
    meta['palette'].append((9, 9, 9))
    assert ds.metainfo == dict(classes=CLASSES, palette=palette)


def test_dataset_builds_from_the_registry_with_sampler_defaults():
    ds = DATASETS.build(dict(type='SyntheticDetDataset', num_images=4, img_size=48,
                             metainfo=dict(classes=('cat', 'dog')),
                             sampler=dict(class_weights=(0, 1))))
    assert isinstance(ds, SyntheticDetDataset)
    assert isinstance(ds.sampler, BoxTargetSampler) and ds.sampler.num_classes == 2
    assert ds[0]['inputs'].shape == (3, 48, 48)
    assert ds[0]['data_samples'].gt_instances.labels.tolist() == [1]
    assert len(DATASETS.build(dict(type='SyntheticDetDataset', num_images=2,
                                   metainfo=dict(classes=('cat',))))[1]['data_samples']
               .gt_instances) == 1


@pytest.mark.parametrize('kwargs, error, message', [
    (dict(num_images=0), ValueError, 'num_images must be a positive integer'),
    (dict(img_size=(0, 10)), ValueError, r'img_size must be a positive integer or an \(H, W\)'),
    (dict(img_size=(10, 10, 3)), ValueError, 'img_size'),
    (dict(metainfo=dict(palette=[])), ValueError, 'metainfo must be a dict with a "classes"'),
    (dict(metainfo=dict(classes=())), ValueError, 'non-empty sequence of class names'),
    (dict(metainfo=dict(classes='cat')), ValueError, 'non-empty sequence of class names'),
    (dict(metainfo=dict(classes=('a', 'b'), palette=[(0, 0, 0)])), ValueError,
     r'one colour per class \(2\), got 1'),
    (dict(sampler=dict(num_classes=3)), ValueError,
     r'sampler.num_classes \(3\) differs from the 6 classes'),
    (dict(sampler=BoxTargetSampler(num_classes=6)), ValueError, 'sampler must be a config dict'),
    (dict(seed=-1), ValueError, 'seed must be a non-negative integer'),
    (dict(draw_targets=0), ValueError, 'draw_targets must be True or False, got 0'),
    (dict(pipeline=[]), TypeError, 'pipeline'),
])
def test_dataset_rejects_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        _dataset(**kwargs)
