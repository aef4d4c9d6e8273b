"""ImageSynthesisHook refuses, before training, synthetic image sizes that the data
preprocessors of the student and teachers would pad, and says which sizes fit."""
from types import SimpleNamespace

import pytest

from conftest import DFKD_CONFIG, save_random_teacher_checkpoint


@pytest.fixture(scope='module')
def distiller(tmp_path_factory):
    """The demo data-free distiller (pad_size_divisor 32), random teacher, no terms."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    from mmdfkd.utils import load_config
    register_all_modules()
    cfg = load_config(DFKD_CONFIG)
    cfg.model.teachers[0].checkpoint = save_random_teacher_checkpoint(
        str(tmp_path_factory.mktemp('teacher') / 't.pth'))
    cfg.model.distill_losses = []
    return MODELS.build(cfg.model)


def _runner(distiller, img_size):
    """The parts of an mmengine Runner that ``before_train`` reads; items without targets."""
    from mmdfkd.datasets import SyntheticDetDataset
    from demo.shapes_coco import SHAPES_CLASSES
    dataset = SyntheticDetDataset(2, img_size=img_size, metainfo=dict(classes=SHAPES_CLASSES),
                                  draw_targets=False)
    return SimpleNamespace(model=distiller, train_dataloader=SimpleNamespace(dataset=dataset),
                           seed=0)


def test_a_size_the_preprocessors_would_pad_is_refused(distiller):
    from mmdfkd.engine.hooks import ImageSynthesisHook
    hook = ImageSynthesisHook(synthesizer=dict(type='InversionSynthesizer', total_steps=2))
    with pytest.raises(ValueError) as info:
        hook.before_train(_runner(distiller, (100, 100)))
    message = str(info.value)
    assert message.startswith(
        'The synthetic images of 100x100 pixels (train_dataloader.dataset.img_size is 100x100) '
        'would be padded to 128x128 by the data preprocessors of the student and teachers '
        '(pad_size_divisor 32): 39% of what the models see would be a constant border.')
    assert ('Use sides that are multiples of 32, e.g. --cfg-options '
            '"train_dataloader.dataset.img_size=(96, 96)" or '
            '"train_dataloader.dataset.img_size=(128, 128)".') in message


def test_the_low_resolution_phase_must_fit_too(distiller):
    from mmdfkd.engine.hooks import ImageSynthesisHook
    hook = ImageSynthesisHook(synthesizer=dict(type='InversionSynthesizer', total_steps=2,
                                               lowres_steps=1, lowres_scale=0.5))
    with pytest.raises(ValueError) as info:
        hook.before_train(_runner(distiller, (96, 160)))
    message = str(info.value)
    assert message.startswith('The low-resolution phase (lowres_scale=0.5) of 48x80 pixels '
                              '(train_dataloader.dataset.img_size is 96x160) would be padded '
                              'to 64x96')
    assert ('multiples of 64 (so that the low-resolution phase (lowres_scale=0.5) is a multiple '
            'of 32 too), e.g. --cfg-options "train_dataloader.dataset.img_size=(64, 128)" or '
            '"train_dataloader.dataset.img_size=(128, 192)".') in message
    hook.before_train(_runner(distiller, (128, 192)))  # fits: training can start
    assert hook.synthesizer is not None
