"""InversionLoss: which teachers get the BN prior (and the log says why), the parts it logs,
the competition term added as adi_weight * (1 - disagreement), and the student it needs."""
import logging

import pytest
import torch
from mmengine.logging import MMLogger

from mmdfkd.models.synthesis import InversionLoss, Targets
from synthesis_fixtures import targets, teacher

NO_AUGMENT = dict(jitter=0, flip=False, brightness=0., contrast=0.)


@pytest.fixture(scope='module')
def bn_teacher():
    return teacher()


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
        loss = InversionLoss([teacher('GN')], [1.0], bn_weight=1.0)
    finally:
        logger.removeHandler(handler)
    assert loss.bn_prior == [False]
    (warning, ) = [r.getMessage() for r in handler.records if r.levelno == logging.WARNING]
    assert 'Teacher 0: RetinaNet has no BatchNorm layer with running statistics' in warning
    assert 'bn_weight=1.0 is ignored for this teacher: set bn_weight=0' in warning
    _, log = loss(torch.rand(2, 3, 64, 64), targets(64), torch.Generator().manual_seed(0))
    assert 'syn_bn_t0' not in log and 'syn_det_t0' in log


def test_frozen_imagenet_bn_falls_back_unless_asked(bn_teacher):
    frozen = teacher()
    frozen.backbone.norm_eval = True  # as mmdet's stock RetinaNet: pretraining statistics
    assert InversionLoss([frozen], [1.0]).bn_prior == [False]
    assert InversionLoss([frozen], [1.0], frozen_bn_prior=True).bn_prior == [True]
    assert InversionLoss([bn_teacher], [1.0]).bn_prior == [True]


def test_parts_sum_to_the_loss_with_their_weights(bn_teacher):
    loss = InversionLoss([bn_teacher], [2.0], det_weight=0.5, bn_weight=0.1, tv_l1_weight=3.0,
                         tv_l2_weight=0.01, l2_weight=0.2, augment=NO_AUGMENT)
    total, log = loss(torch.rand(2, 3, 64, 64), targets(64), torch.Generator().manual_seed(0))
    expected = (2.0 * (0.5 * log['syn_det_t0'] + 0.1 * log['syn_bn_t0'])
                + 3.0 * log['syn_tv_l1'] + 0.01 * log['syn_tv_l2'] + 0.2 * log['syn_l2'])
    assert total.item() == pytest.approx(expected, rel=1e-5)
    assert log['syn_total'] == pytest.approx(total.item())


def test_competition_term_is_added_and_needs_a_callable(bn_teacher):
    with pytest.raises(ValueError, match='needs a competition callable'):
        InversionLoss([bn_teacher], [1.0], adi_weight=1.0)
    with pytest.raises(ValueError, match='adi_weight > 0 needs the student'):
        InversionLoss.from_models([bn_teacher], [1.0], None, adi_weight=1.0)
    seen = []

    def competition(images):
        seen.append(images.shape)
        return images.mean() / 255  # a stand-in disagreement in [0, 1]

    with_term = InversionLoss([bn_teacher], [1.0], adi_weight=1.0, competition=competition)
    pixels = torch.rand(2, 3, 64, 64)
    loss, log = with_term(pixels, targets(64), torch.Generator().manual_seed(1))
    assert seen == [(2, 3, 64, 64)]
    assert 0 <= log['syn_adi_disagreement'] <= 1
    without = InversionLoss([bn_teacher], [1.0])
    loss_without, _ = without(pixels, targets(64), torch.Generator().manual_seed(1))
    torch.testing.assert_close(loss - loss_without,
                               torch.tensor(1 - log['syn_adi_disagreement']),
                               rtol=1e-4, atol=1e-4)


def test_from_models_builds_the_students_disagreement(bn_teacher):
    loss = InversionLoss.from_models([bn_teacher], [1.0], teacher(seed=1), adi_weight=0.5)
    _, log = loss(torch.rand(1, 3, 64, 64), _one(targets(64)), torch.Generator().manual_seed(0))
    assert 0 < log['syn_adi_disagreement'] <= 1


def test_a_low_resolution_image_is_scored_at_its_size(bn_teacher):
    """Half-size pixels: the teacher sees a 32x32 image with the boxes halved."""
    seen = []
    handle = bn_teacher.backbone.register_forward_hook(
        lambda module, args, output: seen.append(tuple(args[0].shape[-2:])))
    try:
        loss = InversionLoss([bn_teacher], [1.0], augment=NO_AUGMENT)
        _, low = loss(torch.rand(2, 3, 32, 32), targets(64), torch.Generator().manual_seed(0))
    finally:
        handle.remove()
    assert seen == [(32, 32)] and low['syn_det_t0'] > 0


def _one(batch: Targets) -> Targets:
    """The first image of a batch of targets."""
    return Targets(batch.boxes[:1], batch.labels[:1], batch.metainfo[:1])
