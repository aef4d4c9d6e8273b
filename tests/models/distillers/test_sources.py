"""Sources: how a term names what it reads from a detector, in its three forms."""
import pytest
import torch
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules

import mmdfkd  # noqa: F401
from distill_fixtures import teacher_model_cfg
from mmdfkd.models.distillers.sources import (check_source, parse_source, record_sources,
                                              source_modules)

register_all_modules(init_default_scope=True)


@pytest.fixture(scope='module')
def detector():
    torch.manual_seed(0)
    return MODELS.build(teacher_model_cfg()).eval()


def test_three_forms_of_a_source(detector):
    assert parse_source(detector, 'neck') == ('neck', None)
    assert parse_source(detector, 'bbox_head.cls') == ('bbox_head', 0)
    assert parse_source(detector, 'bbox_head.reg') == ('bbox_head', 1)
    assert parse_source(detector, 'bbox_head:1') == ('bbox_head', 1)
    assert parse_source(detector, 'backbone.layer1') == ('backbone.layer1', None)
    with pytest.raises(KeyError):
        parse_source(detector, 'bbox_head.box')
    with pytest.raises(ValueError):
        parse_source(detector, 'bbox_head:x')
    assert source_modules(detector, ['bbox_head.cls', 'bbox_head:1', 'neck']) == [
        'bbox_head', 'neck']


def test_record_sources_takes_output_items(detector):
    inputs = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        out = record_sources(detector, ['bbox_head.cls', 'bbox_head:1', 'neck'], inputs)
        cls_scores, bbox_preds = detector.bbox_head.forward(detector.extract_feat(inputs))
    torch.testing.assert_close(out['bbox_head.cls'][1], cls_scores[1])
    torch.testing.assert_close(out['bbox_head:1'][0], bbox_preds[0])
    assert len(out['neck']) == 3


def test_a_bad_source_names_the_entry_close_names_and_the_forms(detector):
    with pytest.raises(ValueError) as info:
        check_source(detector, 'bbox_haed:0', "model.distill_losses[2] (X): teacher='bbox_haed:0'",
                     'teacher 1')
    message = str(info.value)
    assert message.startswith("model.distill_losses[2] (X): teacher='bbox_haed:0' names no "
                              "submodule of teacher 1 (RetinaNet); did you mean 'bbox_head'")
    assert "optionally with ':N' (item N of its output) or '.cls' / '.reg'" in message
    check_source(detector, 'bbox_head.reg', 'unused', 'the student')  # a valid one passes
