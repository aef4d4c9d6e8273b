"""What synthesizers share: targets read from the batch or drawn by the dataset, data samples
made from targets, the image buffer, and building by type from a config."""
import pytest
import torch
from mmdet.structures import DetDataSample

from mmdfkd.datasets import SyntheticDetDataset
from mmdfkd.models.synthesis import (ImageBuffer, InversionSynthesizer, Targets,
                                     build_synthesizer)
from synthesis_fixtures import CLASSES, meta_only, models, samples, teacher


@pytest.fixture(scope='module')
def synthesizer_and_dataset():
    dataset = SyntheticDetDataset(4, img_size=(64, 64), metainfo=dict(classes=CLASSES),
                                  sampler=dict(boxes_per_image=(1, 3)), draw_targets=False)
    return build_synthesizer(dict(type='InversionSynthesizer', total_steps=2, buffer_size=3),
                             models(teacher()), dataset), dataset


def test_build_by_type_with_the_models_and_the_dataset(synthesizer_and_dataset):
    synthesizer, dataset = synthesizer_and_dataset
    assert isinstance(synthesizer, InversionSynthesizer)
    assert synthesizer.dataset is dataset and synthesizer.buffer.capacity == 3
    assert synthesizer.loss.teachers == synthesizer.teachers
    with pytest.raises(KeyError, match="'Inversion' is not a registered synthesizer; use one of "
                       'GeneratorSynthesizer, InversionSynthesizer'):
        build_synthesizer(dict(type='Inversion'), models(teacher()), dataset)


def test_targets_are_read_from_the_batch_or_drawn_by_the_dataset(synthesizer_and_dataset):
    synthesizer, dataset = synthesizer_and_dataset
    drawn = synthesizer.targets_of(samples(dataset, [1, 2]))
    for index, boxes, labels in zip([1, 2], drawn.boxes, drawn.labels):
        expected_boxes, expected_labels = dataset.sample_targets(index)
        assert torch.equal(boxes, torch.from_numpy(expected_boxes))
        assert torch.equal(labels, torch.from_numpy(expected_labels))
    assert drawn.img_hw == (64, 64) and [m['img_id'] for m in drawn.metainfo] == [1, 2]
    carried = SyntheticDetDataset(4, img_size=(64, 64), metainfo=dict(classes=CLASSES),
                                  sampler=dict(boxes_per_image=(1, 3)))
    read = synthesizer.targets_of(samples(carried, [1, 2]))
    assert all(torch.equal(a, b) for a, b in zip(read.boxes, drawn.boxes))
    assert all(torch.equal(a, b) for a, b in zip(read.labels, drawn.labels))
    assert read.metainfo == drawn.metainfo

    without_dataset = InversionSynthesizer(synthesizer.teachers, [1.0], total_steps=1)
    with pytest.raises(ValueError, match='image 1 carries no targets and the train dataset '
                       r'\(NoneType\) cannot draw them'):
        without_dataset.targets_of(meta_only(samples(carried, [1])))


def test_targets_become_data_samples_the_student_trains_on():
    targets = Targets([torch.tensor([[1., 2., 3., 4.]])], [torch.tensor([5])],
                      [dict(img_id=7, img_shape=(8, 8))])
    (sample, ) = targets.data_samples()
    assert isinstance(sample, DetDataSample) and sample.img_id == 7
    assert torch.equal(sample.gt_instances.bboxes, targets.boxes[0])
    assert sample.gt_instances.bboxes is not targets.boxes[0]  # the buffer keeps its own
    assert sample.ignored_instances.bboxes.shape == (0, 4)
    moved = targets.to(torch.device('cpu'))
    assert moved.boxes[0].dtype == torch.float32 and moved.labels[0].dtype == torch.int64


def test_image_buffer_keeps_the_newest_and_draws_with_the_random_stream():
    buffer = ImageBuffer(capacity=3)
    for first in (0, 2):
        images = torch.stack([torch.full((3, 4, 4), i, dtype=torch.uint8)
                              for i in (first, first + 1)])
        buffer.add(images, Targets([torch.tensor([[float(i), 0., 1., 1.]])
                                    for i in (first, first + 1)],
                                   [torch.tensor([i]) for i in (first, first + 1)],
                                   [dict(img_id=i) for i in (first, first + 1)]))
    assert [e['metainfo']['img_id'] for e in buffer.entries] == [1, 2, 3]
    images, targets = buffer.draw(5, torch.Generator().manual_seed(0))
    picks = torch.randint(3, (5, ), generator=torch.Generator().manual_seed(0)).tolist()
    assert [int(image[0, 0, 0]) for image in images] == [1 + i for i in picks]
    assert [m['img_id'] for m in targets.metainfo] == [1 + i for i in picks]
    restored = ImageBuffer(capacity=3)
    restored.load_state_dict(buffer.state_dict())
    assert restored.entries == buffer.entries
