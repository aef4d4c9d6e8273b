"""Every distillation loss refuses a negative or non-finite weight when it is built, with a
message naming the loss and the key."""
import pytest
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules

import mmdfkd  # noqa: F401  (registers the losses)

register_all_modules()

LOSSES = ['FeatureMSELoss', 'ChannelWiseDistillLoss', 'PKDLoss', 'ClassificationKDLoss',
          'BoxRegressionKDLoss', 'PseudoBoxLoss']


@pytest.mark.parametrize('name', LOSSES)
@pytest.mark.parametrize('weight', [-1.0, float('nan'), float('inf'), '2'])
def test_bad_loss_weight_is_refused(name, weight):
    with pytest.raises(ValueError) as info:
        MODELS.build(dict(type=name, loss_weight=weight))
    assert str(info.value).startswith(
        f'{name}: loss_weight must be a finite number >= 0, got {weight!r}.')


@pytest.mark.parametrize('name', LOSSES)
def test_zero_loss_weight_is_accepted(name):
    assert MODELS.build(dict(type=name, loss_weight=0)).loss_weight == 0.0


@pytest.mark.parametrize('key', ['l1_weight', 'giou_weight'])
def test_box_regression_term_weights_are_checked_too(key):
    with pytest.raises(ValueError, match=f'BoxRegressionKDLoss: {key} must be a finite number '
                                         '>= 0, got -1'):
        MODELS.build(dict(type='BoxRegressionKDLoss', **{key: -1}))
