"""The patch-similarity prior (PSAQ-ViT): the entropy of the token similarities against a
hand-computed density, which layers it reads, its gradient, and its place in InversionLoss
(on for a ViT teacher, ignored with a warning for a CNN teacher)."""
import logging
import math
import os.path as osp

import numpy as np
import pytest
import torch
from mmdet.registry import MODELS
from mmengine.logging import MMLogger

from conftest import REPO_ROOT
from mmdfkd.models.synthesis import InversionLoss, build_synthesizer
from mmdfkd.models.synthesis.patch_similarity import (PatchSimilarityLoss, attention_layers,
                                                       similarity_entropy)
from mmdfkd.utils import load_config
from synthesis_fixtures import models, targets, teacher

VIT_TEACHER = osp.join(REPO_ROOT, 'configs', 'demo', '_base_', 'models',
                       'retinanet_vit256_shapes.py')
NO_AUGMENT = dict(jitter=0, flip=False, brightness=0., contrast=0.)


@pytest.fixture(scope='module')
def vit_teacher():
    """The demo ViT teacher's detector, randomly initialized, frozen, in eval mode."""
    torch.manual_seed(0)
    model = MODELS.build(load_config(VIT_TEACHER).model).eval()
    model.requires_grad_(False)
    return model


def _reference_entropy(sims: np.ndarray, bins: int, bandwidth: float) -> float:
    """Entropy of the Gaussian kernel density of ``sims`` on ``bins`` points of [-1, 1]."""
    grid = np.linspace(-1, 1, bins)
    density = np.array([np.mean(np.exp(-0.5 * ((sims - g) / bandwidth)**2)) for g in grid])
    p = density / density.sum()
    return float(-(p * np.log(p)).sum())


def test_entropy_of_three_tokens_matches_a_hand_computed_density():
    # Three tokens at 0, 90 and 180 degrees: pair similarities 0, -1 and 0 (all 3 pairs used).
    tokens = torch.tensor([[[1., 0.], [0., 2.], [-3., 0.]]])
    got = similarity_entropy(tokens, torch.Generator(), num_pairs=10, bins=9, bandwidth=0.3)
    assert got.item() == pytest.approx(_reference_entropy(np.array([0., -1., 0.]), 9, 0.3),
                                       rel=1e-5)


def test_spread_similarities_have_more_entropy_than_clustered_ones():
    rng = torch.Generator().manual_seed(0)
    spread = torch.randn(2, 64, 16)  # random directions: similarities spread around 0
    clustered = torch.ones(2, 64, 16) + 0.01 * torch.randn(2, 64, 16)  # all near one direction
    high = similarity_entropy(spread, rng)
    low = similarity_entropy(clustered, rng)
    assert high > low + 1.0
    assert high <= math.log(64)


def test_sampled_pairs_estimate_the_all_pairs_entropy():
    tokens = torch.randn(1, 100, 8, generator=torch.Generator().manual_seed(1))
    everything = similarity_entropy(tokens, torch.Generator(), num_pairs=10 ** 6)
    sampled = similarity_entropy(tokens, torch.Generator().manual_seed(2), num_pairs=2000)
    assert sampled.item() == pytest.approx(everything.item(), abs=0.05)


def test_settings_and_token_count_are_checked():
    with pytest.raises(ValueError, match='at least 2 tokens'):
        similarity_entropy(torch.randn(1, 1, 4), torch.Generator())
    with pytest.raises(ValueError, match='bandwidth > 0'):
        similarity_entropy(torch.randn(1, 4, 4), torch.Generator(), bandwidth=0)


def test_gradient_ascent_on_the_entropy_spreads_the_tokens():
    tokens = (torch.ones(1, 32, 8) + 0.05 * torch.randn(1, 32, 8)).requires_grad_(True)
    optimizer = torch.optim.Adam([tokens], lr=0.05)
    rng = torch.Generator().manual_seed(0)
    before = similarity_entropy(tokens, rng).item()
    for _ in range(50):
        optimizer.zero_grad()
        (-similarity_entropy(tokens, rng)).backward()
        optimizer.step()
    assert similarity_entropy(tokens, rng).item() > before + 1.0


def test_reads_every_attention_layer_of_a_vit_teacher(vit_teacher):
    layers = attention_layers(vit_teacher)
    assert [name for name, _, _ in layers] == [f'backbone.vit.blocks.{i}.attn'
                                               for i in range(6)]
    assert {prefix for _, _, prefix in layers} == {1}  # DeiT's class token
    images = torch.rand(2, 3, 64, 64, requires_grad=True)
    with PatchSimilarityLoss(vit_teacher, torch.Generator().manual_seed(0), bins=16) as psim:
        vit_teacher.extract_feat(images)
    assert all(e is not None for e in psim.entropies)
    loss = psim.loss()
    assert 0 <= loss.item() <= math.log(16)
    (grad, ) = torch.autograd.grad(loss, images)
    assert grad.abs().sum() > 0
    for _, attn, _ in layers:  # hooks removed on exit
        assert not attn._forward_hooks


def test_a_cnn_has_no_layers_for_it():
    with pytest.raises(ValueError, match='no timm VisionTransformer'):
        PatchSimilarityLoss(teacher(), torch.Generator())


def test_inversion_loss_adds_it_for_a_vit_teacher_with_its_weight(vit_teacher):
    loss = InversionLoss([vit_teacher], [2.0], det_weight=0.5, bn_weight=0., tv_l2_weight=0.,
                         psim_weight=3.0, psim_cfg=dict(bins=16), augment=NO_AUGMENT)
    assert loss.psim_prior == [True]
    total, log = loss(torch.rand(2, 3, 64, 64), targets(64), torch.Generator().manual_seed(0))
    assert 0 < log['syn_psim_t0'] <= math.log(16)
    assert total.item() == pytest.approx(2.0 * (0.5 * log['syn_det_t0'] +
                                                3.0 * log['syn_psim_t0']), rel=1e-5)


def test_inversion_loss_ignores_it_for_a_cnn_teacher_and_says_so():
    logger = MMLogger.get_current_instance()
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        loss = InversionLoss([teacher()], [1.0], psim_weight=1.0)
    finally:
        logger.removeHandler(handler)
    assert loss.psim_prior == [False]
    assert any('psim_weight=1.0 is ignored' in r.getMessage() for r in records
               if r.levelno == logging.WARNING)
    _, log = loss(torch.rand(2, 3, 64, 64), targets(64), torch.Generator().manual_seed(0))
    assert 'syn_psim_t0' not in log


def test_the_demo_recipe_inverts_a_vit_teacher_with_the_prior(vit_teacher):
    """The synthesizer of configs/demo/dfkd_vit256_psim_deit_tiny_shapes.py, on the ViT
    teacher, raises the patch-similarity entropy of its images while it inverts them."""
    cfg = load_config(osp.join(REPO_ROOT, 'configs', 'demo',
                               'dfkd_vit256_psim_deit_tiny_shapes.py'))
    synthesizer_cfg = cfg.custom_hooks[0].synthesizer.to_dict()
    synthesizer_cfg.update(total_steps=12, lowres_steps=4, fp_sampling=None)
    synthesizer = build_synthesizer(synthesizer_cfg, models(vit_teacher), None)
    assert synthesizer.loss.psim_prior == [True] and synthesizer.loss.bn_prior == [False]
    batch = synthesizer.synthesize(targets(128), torch.Generator().manual_seed(0))
    assert len(batch.images) == 2 and batch.images[0].shape == (3, 128, 128)
    assert batch.log['syn_psim_t0'] < batch.first_log['syn_psim_t0']
