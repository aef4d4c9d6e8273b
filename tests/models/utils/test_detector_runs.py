"""Running a detector as deep as needed, predicting on loader-space images, and sharing one
backbone pass between two losses of a batch."""
import pytest
import torch
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules

import mmdfkd  # noqa: F401
from conftest import TEACHER_CONFIG
from mmdfkd.models.utils import (forward_sources, normalize_like, predict_images,
                                 query_samples, record_outputs, shared_features)
from mmdfkd.utils import load_config

register_all_modules(init_default_scope=True)


@pytest.fixture(scope='module')
def detector():
    torch.manual_seed(0)
    model = MODELS.build(load_config(TEACHER_CONFIG).model)
    model.test_cfg.score_thr = 0.0  # a random head scores everything near its prior
    return model.eval()


def _count_calls(module):
    calls = []
    handle = module.register_forward_hook(lambda *args: calls.append(1))
    return calls, handle


def test_record_outputs_runs_no_deeper_than_the_named_modules(detector):
    inputs = torch.randn(1, 3, 64, 64)
    calls, handle = _count_calls(detector.bbox_head)
    with torch.no_grad():
        out = record_outputs(detector, ['neck'], inputs)
        feats = detector.extract_feat(inputs)
    handle.remove()
    assert calls == [] and list(out) == ['neck']
    assert len(out['neck']) == 3
    for got, expected in zip(out['neck'], feats):
        torch.testing.assert_close(got, expected)


def test_forward_sources_calls_heads_as_modules_so_they_are_recorded(detector):
    inputs = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        out = record_outputs(detector, ['neck', 'bbox_head'], inputs)
        cls_scores, bbox_preds = detector.bbox_head.forward(detector.extract_feat(inputs))
        calls, handle = _count_calls(detector.bbox_head)
        forward_sources(detector, inputs, ['bbox_head', 'bbox_head'])
        handle.remove()
    assert calls == [1]  # each module once
    assert len(out['bbox_head'][0]) == 3  # per level
    torch.testing.assert_close(out['bbox_head'][0][0], cls_scores[0])
    torch.testing.assert_close(out['bbox_head'][1][2], bbox_preds[2])


def test_predict_images_equals_normalize_then_predict(detector):
    torch.manual_seed(1)
    images = torch.rand(2, 3, 60, 70) * 255
    meta = [dict(img_shape=(60, 70), ori_shape=(60, 70), scale_factor=(1., 1.))] * 2
    got = predict_images(detector, images, meta)
    inputs = normalize_like(images, detector.data_preprocessor)
    samples = query_samples(meta, inputs)
    assert samples[0].batch_input_shape == (64, 96) == samples[0].pad_shape
    assert samples[0].img_shape == (60, 70)
    with torch.no_grad():
        expected = detector.predict(inputs, samples, rescale=False)
    assert len(got) == 2 and len(got[0]) > 0
    for mine, theirs in zip(got, expected):
        torch.testing.assert_close(mine.bboxes, theirs.pred_instances.bboxes)
        torch.testing.assert_close(mine.scores, theirs.pred_instances.scores)
        assert torch.equal(mine.labels, theirs.pred_instances.labels)


def test_shared_features_runs_the_backbone_once_for_the_same_inputs(detector):
    inputs, other = torch.randn(1, 3, 64, 64), torch.randn(1, 3, 64, 64)
    calls, handle = _count_calls(detector.backbone)
    with torch.no_grad(), shared_features(detector, inputs):
        first = detector.extract_feat(inputs)
        assert detector.extract_feat(inputs) is first
        assert calls == [1]
        detector.extract_feat(other)  # another tensor is computed as usual
        assert calls == [1, 1]
        assert detector.extract_feat(inputs.clone()) is not first
    handle.remove()
    assert 'extract_feat' not in vars(detector)  # the class method again
    assert detector.extract_feat.__func__ is type(detector).extract_feat


def test_shared_features_restores_the_instance_on_error_and_keeps_a_previous_binding(detector):
    inputs = torch.randn(1, 3, 64, 64)
    with pytest.raises(RuntimeError, match='boom'), shared_features(detector, inputs):
        raise RuntimeError('boom')
    assert 'extract_feat' not in vars(detector)

    def own(batch_inputs):
        return 'own'

    detector.extract_feat = own
    try:
        with shared_features(detector, inputs):
            assert detector.extract_feat(inputs) == 'own'
        assert vars(detector)['extract_feat'] is own
    finally:
        del detector.extract_feat
