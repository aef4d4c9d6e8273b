"""The stored teacher-output format: entries written per image come back as the batch."""
import pytest
import torch
from mmengine.structures import InstanceData

from mmdfkd.structures import (OUTPUTS_DIR, collate_teacher_outputs, entry_path, load_entry,
                               make_entries, save_entry, teacher_key)
from mmdfkd.utils.checkpoint_files import CheckpointFileError


def _teacher_batch(seed: int, num: int = 2):
    """One teacher's outputs on a batch: a neck (tuple of levels), a dense head (lists of
    levels) and detections per image."""
    gen = torch.Generator().manual_seed(seed)
    sources = {
        'neck': tuple(torch.randn(num, 4, s, s, generator=gen) for s in (8, 4)),
        'bbox_head': ([torch.randn(num, 6, s, s, generator=gen) for s in (8, 4)],
                      [torch.randn(num, 4, s, s, generator=gen) for s in (8, 4)])}
    detections = [InstanceData(bboxes=torch.rand(k, 4, generator=gen) * 50,
                               scores=torch.rand(k, generator=gen),
                               labels=torch.arange(k)) for k in range(1, num + 1)]
    return sources, detections


def _assert_same_structure(got, expected):
    assert type(got) is type(expected)
    if isinstance(expected, torch.Tensor):
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, expected.half().float())  # stored in fp16
    else:
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            _assert_same_structure(g, e)


def test_collate_of_make_entries_gives_back_the_batch():
    teachers = [_teacher_batch(0), _teacher_batch(1)]
    entries = make_entries(teachers)
    assert len(entries) == 2 and set(entries[0]) == {'teacher0', 'teacher1'}
    stored = entries[1]['teacher1']['sources']['neck'][0]
    assert stored.shape == (1, 4, 8, 8) and stored.dtype == torch.float16
    like = torch.zeros(1)
    for index, (sources, detections) in enumerate(teachers):
        out = collate_teacher_outputs(entries, index, ['neck', 'bbox_head'], True, like)
        assert set(out) == {'neck', 'bbox_head', 'detections'}
        _assert_same_structure(out['neck'], sources['neck'])
        _assert_same_structure(out['bbox_head'], sources['bbox_head'])
        for got, expected in zip(out['detections'], detections):
            assert isinstance(got, InstanceData)
            torch.testing.assert_close(got.bboxes, expected.bboxes)
            torch.testing.assert_close(got.scores, expected.scores)
            assert torch.equal(got.labels, expected.labels)
    only_neck = collate_teacher_outputs(entries, 0, ['neck'], False, like.double())
    assert set(only_neck) == {'neck'} and only_neck['neck'][0].dtype == torch.float64


def test_entries_round_trip_through_files(tmp_path):
    entry = make_entries([_teacher_batch(0, num=1)])[0]
    save_entry(entry, str(tmp_path), 42)
    assert entry_path(str(tmp_path), 42) == str(tmp_path / '0000042.pt')
    loaded = load_entry(str(tmp_path), 42)
    assert teacher_key(0) in loaded
    torch.testing.assert_close(loaded['teacher0']['sources']['neck'][1],
                               entry['teacher0']['sources']['neck'][1])
    assert isinstance(loaded['teacher0']['sources']['neck'], tuple)
    assert OUTPUTS_DIR == 'teacher_outputs/'


def test_a_damaged_entry_is_a_clear_error(tmp_path):
    save_entry(make_entries([_teacher_batch(0, num=1)])[0], str(tmp_path), 3)
    path = entry_path(str(tmp_path), 3)
    data = open(path, 'rb').read()
    open(path, 'wb').write(data[:len(data) // 2])
    with pytest.raises(CheckpointFileError, match='0000003.pt'):
        load_entry(str(tmp_path), 3)


def test_missing_teachers_and_sources_say_to_regenerate_the_bank():
    entries = make_entries([_teacher_batch(0)])
    with pytest.raises(KeyError, match=r"hold \['teacher0'\], not teacher1: regenerate"):
        collate_teacher_outputs(entries, 1, ['neck'], False, torch.zeros(1))
    with pytest.raises(KeyError, match="lack the source 'backbone'.*--store-outputs"):
        collate_teacher_outputs(entries, 0, ['backbone'], False, torch.zeros(1))
