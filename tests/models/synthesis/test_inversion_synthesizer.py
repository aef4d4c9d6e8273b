"""InversionSynthesizer on a small RetinaNet teacher: the BN loss falls, pixels stay in range,
multi-resolution and false-positive sampling work, a non-finite loss is refused before it
reaches the pixels; during training cohorts are amortized through the buffer, targets are
drawn only for the batches that start a cohort, and a checkpoint restores the run exactly
without holding the cohort's pixels."""
import io

import pytest
import torch
from mmdet.structures.bbox import bbox_overlaps

from mmdfkd.datasets import SyntheticDetDataset
from mmdfkd.models.synthesis import InversionSynthesizer, NonFiniteSynthesisError
from synthesis_fixtures import CLASSES, meta_only, samples, targets, teacher

NO_AUGMENT = dict(jitter=0, flip=False, brightness=0., contrast=0.)


@pytest.fixture(scope='module')
def frozen_teacher():
    return teacher()


def _synthesizer(frozen_teacher, **kwargs):
    return InversionSynthesizer([frozen_teacher], [1.0], **kwargs)


def _dataset(draw_targets=True):
    return SyntheticDetDataset(8, img_size=(64, 64), metainfo=dict(classes=CLASSES),
                               sampler=dict(boxes_per_image=(1, 2)), draw_targets=draw_targets)


def test_bn_loss_falls_and_pixels_stay_in_range(frozen_teacher):
    # The BN term alone, without random augmentations, so its descent is not masked by them.
    synthesizer = _synthesizer(frozen_teacher, total_steps=12, lr=0.1,
                               loss=dict(bn_weight=1.0, det_weight=0., augment=NO_AUGMENT))
    rng = torch.Generator().manual_seed(0)
    cohort = synthesizer.start(targets(), rng)
    first = synthesizer.refine(cohort, 2, rng)
    synthesizer.refine(cohort, 8, rng)
    last = synthesizer.refine(cohort, 2, rng)
    assert last['syn_bn_t0'] < 0.95 * first['syn_bn_t0']
    assert synthesizer.finished(cohort) and cohort.age == 12
    assert 0 <= cohort.params.min() and cohort.params.max() <= 1
    images = synthesizer.images(cohort)
    assert images.shape == (2, 3, 128, 128)
    assert torch.equal(images, images.round()) and images.max() <= 255


def test_multiresolution_starts_small_and_upsamples(frozen_teacher):
    synthesizer = _synthesizer(frozen_teacher, total_steps=4, lowres_steps=2, lowres_scale=0.5)
    assert synthesizer.input_scales == {'The low-resolution phase (lowres_scale=0.5)': 0.5}
    rng = torch.Generator().manual_seed(0)
    cohort = synthesizer.start(targets(), rng)
    assert tuple(cohort.params.shape[-2:]) == (64, 64)
    synthesizer.refine(cohort, 2, rng)
    assert tuple(cohort.params.shape[-2:]) == (64, 64)
    synthesizer.refine(cohort, 1, rng)
    assert tuple(cohort.params.shape[-2:]) == (128, 128)
    assert _synthesizer(frozen_teacher, total_steps=4).input_scales == {}


def test_false_positive_sampling_adds_non_overlapping_detections():
    confident = teacher()
    # Make the teacher confident everywhere: every detection passes the score threshold.
    torch.nn.init.constant_(confident.bbox_head.retina_cls.bias, 5.)
    synthesizer = _synthesizer(confident, total_steps=2,
                               fp_sampling=dict(start=1, interval=1, score_thr=0.5, iou_thr=0.35,
                                                area_range=(0.0, 1.0), max_boxes=4))
    rng = torch.Generator().manual_seed(0)
    cohort = synthesizer.start(targets(), rng)
    synthesizer.refine(cohort, 1, rng)
    for boxes in cohort.targets.boxes:
        assert 1 < len(boxes) <= 4
        assert (bbox_overlaps(boxes[1:], boxes[:1]) < 0.35).all()


def test_synthesize_makes_uint8_images_for_the_targets(frozen_teacher):
    synthesizer = _synthesizer(frozen_teacher, total_steps=3)
    batch = synthesizer.synthesize(targets(64), torch.Generator().manual_seed(0))
    assert len(batch.images) == 2 and batch.images[0].shape == (3, 64, 64)
    assert batch.images[0].dtype == torch.uint8
    assert 'syn_bn_t0' in batch.first_log and 'syn_bn_t0' in batch.log
    assert batch.first_log != batch.log
    torch.testing.assert_close(batch.targets.boxes[0], targets(64).boxes[0])
    assert len(synthesizer.buffer) == 0  # made for the caller, not for training


def test_non_finite_loss_is_refused_before_it_reaches_the_pixels(frozen_teacher, monkeypatch):
    synthesizer = _synthesizer(frozen_teacher, total_steps=4)
    rng = torch.Generator().manual_seed(0)
    cohort = synthesizer.start(targets(64), rng)
    synthesizer.refine(cohort, 1, rng)
    before = cohort.params.detach().clone()
    original = synthesizer.loss

    def nan_detection_loss(*args, **kwargs):
        loss, log = original(*args, **kwargs)
        return loss * float('nan'), dict(log, syn_det_t0=float('nan'))

    monkeypatch.setattr(synthesizer, 'loss', nan_detection_loss)
    with pytest.raises(NonFiniteSynthesisError, match=r'step 1 of a cohort .*syn_det_t0=nan'):
        synthesizer.refine(cohort, 2, rng)
    assert torch.equal(cohort.params, before) and cohort.age == 1


def test_training_batches_come_from_the_buffer_and_cohorts_from_their_batch(frozen_teacher):
    dataset = _dataset()
    synthesizer = _synthesizer(frozen_teacher, total_steps=2, steps_per_iter=1, buffer_size=4,
                               initial_cohorts=1)
    rng = torch.Generator().manual_seed(0)
    first = synthesizer.next_batch(samples(dataset, [0, 1]), rng)
    # Warm-up: one cohort for batch 0 finished; the next, for batch 0 too, had one step.
    assert len(synthesizer.buffer) == 2 and synthesizer.cohort.age == 1
    assert [m['img_id'] for m in synthesizer.cohort.targets.metainfo] == [0, 1]
    assert len(first.images) == 2 and first.images[0].dtype == torch.uint8
    assert {m['img_id'] for m in first.targets.metainfo} <= {0, 1}
    assert 'syn_det_t0' in first.log
    synthesizer.next_batch(samples(dataset, [2, 3]), rng)
    # That cohort finished: the batch current then starts the next one.
    assert len(synthesizer.buffer) == 4 and synthesizer.cohort.age == 0
    started = synthesizer.cohort.targets
    for index, boxes in zip([2, 3], started.boxes):
        torch.testing.assert_close(boxes, torch.from_numpy(dataset.sample_targets(index)[0]))
    synthesizer.next_batch(samples(dataset, [4, 5]), rng)
    assert len(synthesizer.buffer) == 4  # oldest out first


def test_targets_are_drawn_only_for_the_batches_that_start_a_cohort(frozen_teacher,
                                                                    monkeypatch):
    """With ``draw_targets=False`` the items carry meta information only; the synthesizer
    draws the targets of the batches that start a cohort, and makes the same images as from
    items that carry their targets."""
    results, drawn = [], []
    for draw_targets in (True, False):
        dataset = _dataset(draw_targets)
        original = dataset.sample_targets
        monkeypatch.setattr(dataset, 'sample_targets',
                            lambda idx, original=original: drawn.append(idx) or original(idx))
        synthesizer = _synthesizer(frozen_teacher, dataset=dataset, total_steps=2,
                                   steps_per_iter=1, buffer_size=4,
                                   fp_sampling=dict(start=1, interval=1))
        rng = torch.Generator().manual_seed(0)
        batches = []
        for first in (0, 2, 4, 6):
            batch = samples(dataset, [first, first + 1])
            assert ('gt_instances' in batch[0]) is draw_targets
            batches.append(synthesizer.next_batch(batch, rng))
        results.append(batches)
        if not draw_targets:
            # Batch 0 starts two cohorts (warm-up, then the next), batch 2 one, batch 4 none
            # (its cohort is in progress), batch 6 one.
            assert drawn == [0, 1, 0, 1, 2, 3, 6, 7]
        drawn.clear()
    for with_targets, without in zip(*results):
        assert all(torch.equal(a, b) for a, b in zip(with_targets.images, without.images))
        assert all(torch.equal(a, b) for a, b in zip(with_targets.targets.boxes,
                                                     without.targets.boxes))
        assert with_targets.log == without.log


def test_a_checkpoint_restores_the_run_exactly_without_the_cohort_pixels(frozen_teacher):
    dataset = _dataset(draw_targets=False)
    settings = dict(total_steps=5, steps_per_iter=2, buffer_size=4, lowres_steps=2,
                    fp_sampling=dict(start=3, interval=1, score_thr=0.0))
    running = _synthesizer(frozen_teacher, dataset=dataset, **settings)
    rng = torch.Generator().manual_seed(0)
    for first in (0, 2):
        running.next_batch(meta_only(samples(dataset, [first, first + 1])), rng)
    assert running.cohort.age == 4  # in progress, past the low-resolution phase
    state = running.state_dict()
    tensors = list(_tensors(state))
    assert not any(t.is_floating_point() and t.numel() >= 3 * 32 * 32 for t in tensors)
    # Two uint8 images, and random states (5056 bytes each) of the cohort's start and its two
    # refine calls, with a little room for the targets.
    assert sum(t.numel() * t.element_size() for t in tensors) < 2 * 3 * 64 * 64 + 3 * 5056 + 2048

    resumed = _synthesizer(frozen_teacher, dataset=dataset, **settings)
    resumed.load_state_dict(_saved_and_loaded(state))
    assert resumed.describe_state() == '2 in the buffer, cohort at step 4'
    assert torch.equal(resumed.cohort.params, running.cohort.params)
    for key in ('exp_avg', 'exp_avg_sq'):
        assert torch.equal(resumed.cohort.optimizer.state_dict()['state'][0][key],
                           running.cohort.optimizer.state_dict()['state'][0][key])
    assert all(torch.equal(a, b) for a, b in zip(resumed.cohort.targets.boxes,
                                                 running.cohort.targets.boxes))
    resumed_rng = torch.Generator().set_state(rng.get_state())
    for first in (4, 6):
        batch = meta_only(samples(dataset, [first, first + 1]))
        expected, got = running.next_batch(batch, rng), resumed.next_batch(batch, resumed_rng)
        assert all(torch.equal(a, b) for a, b in zip(expected.images, got.images))
        assert expected.log == got.log


def test_settings_out_of_range_are_refused(frozen_teacher):
    with pytest.raises(ValueError, match='total_steps must be at least 1'):
        _synthesizer(frozen_teacher, total_steps=0)
    with pytest.raises(ValueError, match=r'lowres_steps=4 must be in \[0, total_steps=4\)'):
        _synthesizer(frozen_teacher, total_steps=4, lowres_steps=4)
    with pytest.raises(ValueError, match=r"init must be one of \['dead_leaves', 'noise', "
                                         r"'smooth', 'spectral'\], got 'zeros'"):
        _synthesizer(frozen_teacher, total_steps=4, init='zeros')
    with pytest.raises(ValueError, match='buffer_size and initial_cohorts must be >= 1'):
        _synthesizer(frozen_teacher, total_steps=4, buffer_size=0)


def _tensors(structure):
    if isinstance(structure, torch.Tensor):
        yield structure
    elif isinstance(structure, dict):
        for value in structure.values():
            yield from _tensors(value)
    elif isinstance(structure, (list, tuple)):
        for value in structure:
            yield from _tensors(value)


def _saved_and_loaded(state: dict) -> dict:
    """The state as a checkpoint gives it back: written, then read with weights only."""
    stream = io.BytesIO()
    torch.save(state, stream)
    stream.seek(0)
    return torch.load(stream, weights_only=True)


def test_lanczos_upsampling_of_the_low_resolution_phase(frozen_teacher, monkeypatch):
    """With ``upsample='lanczos3'`` low-resolution images reach full resolution by
    ``lanczos_resize`` (clamped to [0, 1]), not bilinearly, both as full-size images and when
    the optimization moves to full resolution; an unknown mode is refused."""
    from mmdfkd.models.utils.lanczos import lanczos_resize
    settings = dict(total_steps=3, lowres_steps=1, lowres_scale=0.5)
    lanczos = _synthesizer(frozen_teacher, upsample='lanczos3', **settings)
    rng = torch.Generator().manual_seed(0)
    cohort = lanczos.start(targets(64), rng)
    lanczos.refine(cohort, 1, rng)
    low = lanczos.pixels(cohort).detach()
    assert low.shape[-2:] == (32, 32)
    upsampled = lanczos_resize(low, (64, 64), order=3).clamp(0, 1)
    torch.testing.assert_close(lanczos.images(cohort), (upsampled * 255).round())
    bilinear = _synthesizer(frozen_teacher, **settings)
    assert not torch.equal(bilinear.images(cohort), (upsampled * 255).round())
    # A loss without gradient leaves the upsampled pixels as the next step starts them.
    monkeypatch.setattr(lanczos, 'loss', lambda pixels, *args: (pixels.sum() * 0, {}))
    lanczos.refine(cohort, 1, rng)
    assert tuple(cohort.params.shape[-2:]) == (64, 64)
    torch.testing.assert_close(lanczos.pixels(cohort), upsampled)
    images = lanczos.images(cohort)
    assert images.shape == (2, 3, 64, 64)
    assert 0 <= images.min() and images.max() <= 255
    with pytest.raises(ValueError, match=r"upsample must be one of \['bilinear', 'lanczos3', "
                                         r"'lanczos5'\], got 'bicubic'"):
        _synthesizer(frozen_teacher, total_steps=3, upsample='bicubic')
