"""GeneratorSynthesizer: the network is updated on every batch's targets (drawn by the
synthesizer when the items carry none), a non-finite loss leaves it as it was, and its state
restores the network and optimizer exactly."""
import io

import pytest
import torch

from mmdfkd.datasets import SyntheticDetDataset
from mmdfkd.models.synthesis import GeneratorSynthesizer, NonFiniteSynthesisError
from synthesis_fixtures import CLASSES, meta_only, samples, teacher

NETWORK = dict(base_channels=16, num_upsamples=2)


@pytest.fixture(scope='module')
def frozen_teacher():
    return teacher()


def _dataset(draw_targets=True):
    return SyntheticDetDataset(8, img_size=(64, 64), metainfo=dict(classes=CLASSES),
                               draw_targets=draw_targets)


def _synthesizer(frozen_teacher, dataset, seed=0, **kwargs):
    torch.manual_seed(seed)  # the network's initial weights
    return GeneratorSynthesizer([frozen_teacher], [1.0], dataset=dataset,
                                network=dict(NETWORK, **kwargs.pop('network', {})), **kwargs)


def test_next_batch_updates_the_network_then_draws_for_the_batch(frozen_teacher):
    dataset = _dataset()
    synthesizer = _synthesizer(frozen_teacher, dataset, steps_per_iter=2)
    assert synthesizer.network.img_size == (64, 64)
    assert synthesizer.network.num_classes == len(CLASSES)
    before = [p.detach().clone() for p in synthesizer.network.parameters()]
    batch = synthesizer.next_batch(samples(dataset, [0, 1]), torch.Generator().manual_seed(0))
    assert synthesizer.optim_wrapper.optimizer.state_dict()['state'][0]['step'] == 2
    assert any(not torch.equal(a, b) for a, b in zip(before,
                                                     synthesizer.network.parameters()))
    assert len(batch.images) == 2 and batch.images[0].shape == (3, 64, 64)
    assert batch.images[0].dtype == torch.uint8
    assert [m['img_id'] for m in batch.targets.metainfo] == [0, 1]
    torch.testing.assert_close(batch.targets.boxes[1],
                               torch.from_numpy(dataset.sample_targets(1)[0]))
    assert {'syn_det_t0', 'syn_bn_t0', 'syn_total'} <= set(batch.log)


def test_items_without_targets_give_the_same_batches(frozen_teacher):
    outputs = []
    for draw_targets in (True, False):
        dataset = _dataset(draw_targets)
        synthesizer = _synthesizer(frozen_teacher, dataset)
        rng = torch.Generator().manual_seed(0)
        batch = samples(dataset, [2, 3])
        outputs.append([synthesizer.next_batch(meta_only(batch) if not draw_targets else batch,
                                               rng) for _ in range(2)])
    for a, b in zip(*outputs):
        assert all(torch.equal(x, y) for x, y in zip(a.images, b.images))
        assert all(torch.equal(x, y) for x, y in zip(a.targets.boxes, b.targets.boxes))
        assert a.log == b.log


def test_a_non_finite_loss_leaves_the_network_as_it_was(frozen_teacher, monkeypatch):
    dataset = _dataset()
    synthesizer = _synthesizer(frozen_teacher, dataset)
    before = [p.detach().clone() for p in synthesizer.network.parameters()]
    original = synthesizer.loss

    def nan_loss(*args, **kwargs):
        loss, log = original(*args, **kwargs)
        return loss * float('nan'), log

    monkeypatch.setattr(synthesizer, 'loss', nan_loss)
    targets = synthesizer.targets_of(samples(dataset, [0, 1]))
    with pytest.raises(NonFiniteSynthesisError, match='the generator network was not updated'):
        synthesizer.update(targets, torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(before, synthesizer.network.parameters()))


def test_state_restores_network_and_optimizer(frozen_teacher):
    dataset = _dataset()
    running = _synthesizer(frozen_teacher, dataset)
    rng = torch.Generator().manual_seed(0)
    running.next_batch(samples(dataset, [0, 1]), rng)
    resumed = _synthesizer(frozen_teacher, dataset, seed=1)  # the state must overwrite it
    resumed.load_state_dict(_saved_and_loaded(running.state_dict()))
    assert resumed.describe_state() == 'generator network and optimizer'
    resumed_rng = torch.Generator().set_state(rng.get_state())
    batch = samples(dataset, [2, 3])
    expected, got = running.next_batch(batch, rng), resumed.next_batch(batch, resumed_rng)
    assert all(torch.equal(a, b) for a, b in zip(expected.images, got.images))
    assert expected.log == got.log


def test_synthesize_draws_in_eval_mode(frozen_teacher):
    dataset = _dataset()
    synthesizer = _synthesizer(frozen_teacher, dataset)
    targets = synthesizer.targets_of(samples(dataset, [0, 1]))
    synthesizer.update(targets, torch.Generator().manual_seed(0))
    batch = synthesizer.synthesize(targets, torch.Generator().manual_seed(0))
    assert not synthesizer.network.training and batch.images[0].dtype == torch.uint8
    assert batch.log == {} and batch.first_log == {}


def test_a_network_size_other_than_the_datasets_is_refused(frozen_teacher):
    with pytest.raises(ValueError, match=r'draws 32x32 images but the train dataset samples '
                       r'boxes in 64x64 images: remove img_size'):
        _synthesizer(frozen_teacher, _dataset(), network=dict(img_size=(32, 32)))
    with pytest.raises(ValueError, match='steps_per_iter must be >= 1'):
        _synthesizer(frozen_teacher, _dataset(), steps_per_iter=0)


def _saved_and_loaded(state: dict) -> dict:
    """The state as a checkpoint gives it back: written, then read with weights only."""
    stream = io.BytesIO()
    torch.save(state, stream)
    stream.seek(0)
    return torch.load(stream, weights_only=True)
