"""DetectorInverter on a small RetinaNet teacher: the BN loss falls, pixels stay in range,
multi-resolution and false-positive sampling work, teachers without BN fall back (and say so),
and a non-finite loss is refused before it reaches the pixels."""
import logging

import torch
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.logging import MMLogger

from conftest import TEACHER_CONFIG
from mmdfkd.models.synthesis import DetectorInverter
from mmdfkd.utils import load_config

register_all_modules()


def _teacher(norm: str = 'BN'):
    cfg = load_config(TEACHER_CONFIG).model
    if norm == 'GN':
        gn = dict(type='GN', num_groups=16, requires_grad=True)
        cfg.backbone.norm_cfg = gn
        cfg.neck.norm_cfg = gn
        cfg.bbox_head.norm_cfg = gn
    torch.manual_seed(0)
    teacher = MODELS.build(cfg).eval()
    teacher.requires_grad_(False)
    return teacher


def _targets():
    boxes = [torch.tensor([[10., 12., 60., 50.]]), torch.tensor([[30., 30., 90., 100.]])]
    labels = [torch.tensor([1]), torch.tensor([4])]
    meta = [dict(img_id=i, img_shape=(128, 128), ori_shape=(128, 128), scale_factor=(1., 1.))
            for i in range(2)]
    return boxes, labels, meta


def test_bn_loss_falls_and_pixels_stay_in_range():
    # The BN term alone, without random augmentations, so its descent is not masked by them.
    inverter = DetectorInverter([_teacher()], [1.0], total_steps=12, lr=0.1, bn_weight=1.0,
                                det_weight=0.,
                                augment=dict(jitter=0, flip=False, brightness=0., contrast=0.))
    generator = torch.Generator().manual_seed(0)
    cohort = inverter.start(*_targets(), (128, 128), generator)
    first = inverter.refine(cohort, 2, generator)
    inverter.refine(cohort, 8, generator)
    last = inverter.refine(cohort, 2, generator)
    assert last['syn_bn_t0'] < 0.95 * first['syn_bn_t0']
    assert inverter.finished(cohort) and cohort.age == 12
    assert 0 <= cohort.pixels.min() and cohort.pixels.max() <= 1
    images = inverter.images(cohort)
    assert images.shape == (2, 3, 128, 128)
    assert torch.equal(images, images.round()) and images.max() <= 255


def test_multiresolution_starts_small_and_upsamples():
    inverter = DetectorInverter([_teacher()], [1.0], total_steps=4, lowres_steps=2,
                                lowres_scale=0.5)
    generator = torch.Generator().manual_seed(0)
    cohort = inverter.start(*_targets(), (128, 128), generator)
    assert tuple(cohort.pixels.shape[-2:]) == (64, 64)
    inverter.refine(cohort, 2, generator)
    assert tuple(cohort.pixels.shape[-2:]) == (64, 64)
    inverter.refine(cohort, 1, generator)
    assert tuple(cohort.pixels.shape[-2:]) == (128, 128)


def test_false_positive_sampling_adds_non_overlapping_detections():
    teacher = _teacher()
    # Make the teacher confident everywhere: every detection passes the score threshold.
    torch.nn.init.constant_(teacher.bbox_head.retina_cls.bias, 5.)
    inverter = DetectorInverter([teacher], [1.0], total_steps=2,
                                fp_sampling=dict(start=1, interval=1, score_thr=0.5,
                                                 iou_thr=0.35, area_range=(0.0, 1.0),
                                                 max_boxes=4))
    generator = torch.Generator().manual_seed(0)
    cohort = inverter.start(*_targets(), (128, 128), generator)
    inverter.refine(cohort, 1, generator)
    from mmdet.structures.bbox import bbox_overlaps
    for boxes in cohort.boxes:
        assert 1 < len(boxes) <= 4
        overlaps = bbox_overlaps(boxes[1:], boxes[:1])
        assert (overlaps < 0.35).all()


class _Records(logging.Handler):
    """Keeps the records logged while attached."""

    def __init__(self) -> None:
        super().__init__()
        self.records = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_teacher_without_bn_falls_back_to_the_other_losses():
    logger = MMLogger.get_current_instance()
    handler = _Records()
    logger.addHandler(handler)
    try:
        inverter = DetectorInverter([_teacher('GN')], [1.0], total_steps=2, bn_weight=1.0)
    finally:
        logger.removeHandler(handler)
    assert inverter.bn_prior == [False]
    (warning, ) = [r.getMessage() for r in handler.records if r.levelno == logging.WARNING]
    assert 'Teacher 0: RetinaNet has no BatchNorm layer with running statistics' in warning
    assert 'bn_weight=1.0 is ignored for this teacher: set bn_weight=0' in warning
    generator = torch.Generator().manual_seed(0)
    cohort = inverter.start(*_targets(), (128, 128), generator)
    log = inverter.refine(cohort, 1, generator)
    assert 'syn_bn_t0' not in log and 'syn_det_t0' in log


def test_competition_term_is_added_and_needs_a_callable():
    import pytest
    with pytest.raises(ValueError, match='needs a competition callable'):
        DetectorInverter([_teacher()], [1.0], total_steps=2, adi_weight=1.0)
    seen = []

    def competition(images):
        seen.append(images.shape)
        return images.mean() / 255  # a stand-in disagreement in [0, 1]

    inverter = DetectorInverter([_teacher()], [1.0], total_steps=2, adi_weight=1.0,
                                competition=competition)
    cohort = inverter.start(*_targets(), (128, 128), torch.Generator().manual_seed(0))
    loss, log = inverter.loss(cohort, torch.Generator().manual_seed(1))
    assert seen == [(2, 3, 128, 128)]
    assert 0 <= log['syn_adi_disagreement'] <= 1
    without = DetectorInverter([_teacher()], [1.0], total_steps=2)
    loss_without, _ = without.loss(cohort, torch.Generator().manual_seed(1))  # same augmentation
    torch.testing.assert_close(loss - loss_without,
                               torch.tensor(1 - log['syn_adi_disagreement']),
                               rtol=1e-4, atol=1e-4)


def test_frozen_imagenet_bn_falls_back_unless_asked():
    teacher = _teacher()
    teacher.backbone.norm_eval = True  # as mmdet's stock RetinaNet: pretraining statistics
    assert DetectorInverter([teacher], [1.0], total_steps=2).bn_prior == [False]
    assert DetectorInverter([teacher], [1.0], total_steps=2,
                            frozen_bn_prior=True).bn_prior == [True]
    assert DetectorInverter([_teacher()], [1.0], total_steps=2).bn_prior == [True]


def test_non_finite_loss_is_refused_before_it_reaches_the_pixels(monkeypatch):
    import pytest

    from mmdfkd.models.synthesis import NonFiniteSynthesisError
    inverter = DetectorInverter([_teacher()], [1.0], total_steps=4)
    generator = torch.Generator().manual_seed(0)
    cohort = inverter.start(*_targets(), (128, 128), generator)
    inverter.refine(cohort, 1, generator)
    before = cohort.pixels.detach().clone()
    original = inverter.image_loss

    def nan_detection_loss(*args, **kwargs):
        loss, log = original(*args, **kwargs)
        return loss * float('nan'), dict(log, syn_det_t0=float('nan'))

    monkeypatch.setattr(inverter, 'image_loss', nan_detection_loss)
    with pytest.raises(NonFiniteSynthesisError, match=r'step 1 of a cohort .*syn_det_t0=nan'):
        inverter.refine(cohort, 2, generator)
    assert torch.equal(cohort.pixels, before) and cohort.age == 1
