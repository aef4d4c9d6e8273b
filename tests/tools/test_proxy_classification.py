"""The proxy pretraining task of the frozen-BN demo teacher (tools/demo/proxy_classification.py)
and its command-line tool (tools/pretrain_backbone.py)."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules

from conftest import REPO_ROOT, run_tool
from demo.proxy_classification import (PROXY_CLASSES, ProxyClassifier, make_proxy_image,
                                       make_proxy_set, save_backbone_checkpoint,
                                       train_proxy_classifier)
from mmdfkd.utils import load_config
from pretrain_backbone import parse_args

TEACHER_MODEL = osp.join(REPO_ROOT, 'configs', 'demo', '_base_', 'models',
                         'retinanet_r18_frozen_bn_shapes.py')


def test_images_are_deterministic_by_seed_and_split():
    images, labels = make_proxy_set(20, 32, seed=1)
    again, again_labels = make_proxy_set(20, 32, seed=1)
    assert images.dtype == np.uint8 and images.shape == (20, 32, 32, 3)
    np.testing.assert_array_equal(images, again)
    np.testing.assert_array_equal(labels, again_labels)
    # A smaller set is a prefix of a larger one; another seed or split gives other images.
    np.testing.assert_array_equal(make_proxy_set(7, 32, seed=1)[0], images[:7])
    for other in (make_proxy_set(20, 32, seed=2)[0], make_proxy_set(20, 32, 1, 'val')[0]):
        assert all(not np.array_equal(a, b) for a, b in zip(images, other))


def test_classes_are_balanced_and_every_image_varies():
    _, labels = make_proxy_set(3 * len(PROXY_CLASSES), 32)
    assert np.bincount(labels).tolist() == [3] * len(PROXY_CLASSES)
    for label in range(len(PROXY_CLASSES)):
        image = make_proxy_image(np.random.default_rng(label), label, 64)
        assert image.std() > 0, PROXY_CLASSES[label]  # a pattern, not a flat colour
    with pytest.raises(ValueError, match='texture family'):
        make_proxy_image(np.random.default_rng(0), len(PROXY_CLASSES), 32)


def test_noise_families_differ_in_spectral_slope():
    """White, pink and brown noise carry less and less energy at high frequencies."""
    def high_frequency_share(label):
        shares = []
        for seed in range(4):
            pattern = make_proxy_image(np.random.default_rng(seed), label, 64).mean(-1)
            power = np.abs(np.fft.fft2(pattern - pattern.mean())) ** 2
            freq = np.hypot(*np.meshgrid(np.fft.fftfreq(64), np.fft.fftfreq(64)))
            shares.append(power[freq > 0.25].sum() / power.sum())
        return np.mean(shares)

    white, pink, brown = (high_frequency_share(PROXY_CLASSES.index(name))
                          for name in ('white_noise', 'pink_noise', 'brown_noise'))
    assert white > 3 * pink and pink > 10 * brown, (white, pink, brown)


def test_training_drives_the_loss_down():
    """A few steps on 20 images (two per class) fit them: the classes can be told apart."""
    torch.set_num_threads(1)
    train_set = make_proxy_set(20, 32, seed=0)
    result = train_proxy_classifier(num_val=10, img_size=32, steps=30, batch_size=20,
                                    train_set=train_set, log_interval=0)
    losses = result['losses']
    assert len(losses) == 30
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5]), losses
    assert 0.0 <= result['val_accuracy'] <= 1.0
    assert not result['model'].training


def test_checkpoint_loads_into_the_teachers_backbone(tmp_path):
    """The saved backbone, BN running statistics included, is what the frozen-BN teacher's
    `Pretrained` init_cfg loads through mmengine: every tensor of its backbone."""
    torch.manual_seed(0)
    classifier = ProxyClassifier()
    with torch.no_grad():  # running statistics unlike a fresh layer's, to see them loaded
        for module in classifier.backbone.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 2)
    path = save_backbone_checkpoint(classifier, str(tmp_path / 'backbone.pth'),
                                    meta=dict(val_accuracy=0.5))
    register_all_modules()
    cfg = load_config(TEACHER_MODEL).model
    cfg.backbone.init_cfg.checkpoint = path
    detector = MODELS.build(cfg)
    detector.init_weights()
    saved = classifier.backbone.state_dict()
    loaded = detector.backbone.state_dict()
    assert set(saved) == set(loaded)
    for key, value in loaded.items():
        assert torch.equal(value, saved[key]), key


def test_command_line_tool_writes_checkpoint_and_summary(tmp_path):
    out = tmp_path / 'proxy' / 'backbone.pth'
    result = run_tool(['tools/pretrain_backbone.py', '--out', str(out), '--steps', '2',
                       '--batch-size', '10', '--num-train', '20', '--num-val', '10',
                       '--img-size', '32'], env=dict(OMP_NUM_THREADS='1'))
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'held-out accuracy' in result.stdout
    summary = json.loads((tmp_path / 'proxy' / 'backbone.json').read_text())
    assert summary['steps'] == 2 and summary['classes'] == list(PROXY_CLASSES)
    checkpoint = torch.load(out, weights_only=True)
    assert 'layer4.1.bn2.running_var' in checkpoint['state_dict']
    assert checkpoint['meta']['val_accuracy'] == summary['val_accuracy']


@pytest.mark.parametrize('argv, message', [
    (['--img-size', '16'], '--img-size must be at least 32'),
    (['--steps', '0'], '--steps must be at least 1'),
])
def test_command_line_tool_rejects_bad_settings(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
