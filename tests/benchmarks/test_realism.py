"""tools/demo/realism.py: the Fréchet distance, the pooled backbone features and the meter that
scores image sets against the real val images."""
import os.path as osp

import numpy as np
import pytest
import torch
from scipy import linalg

from conftest import REPO_ROOT, save_random_teacher_checkpoint
from demo import realism

STUDENT_CONFIG = osp.join(REPO_ROOT, 'configs', 'demo', 'retinanet_deit_tiny_shapes.py')


@pytest.fixture(scope='module')
def student_checkpoint(tmp_path_factory) -> str:
    """The demo ViT student (the realism features' detector), randomly initialized."""
    from mmengine.runner import save_checkpoint

    from mmdfkd.utils.model_stats import build_model
    torch.manual_seed(0)
    path = str(tmp_path_factory.mktemp('student') / 'student.pth')
    save_checkpoint(dict(state_dict=build_model(STUDENT_CONFIG).state_dict()), path)
    return path


def _split(root: str, split: str):
    return realism.dataset_image_paths(root, f'annotations/instances_{split}.json', f'{split}/')


def test_frechet_distance_of_diagonal_gaussians_has_the_closed_form():
    # Diagonal covariances commute: sqrtm(S1 S2) = diag(sqrt(a b)), so
    # FD = |mu1 - mu2|^2 + sum((sqrt(a) - sqrt(b))^2) = (1 + 4) + ((2 - 1)^2 + (3 - 1)^2 + 0).
    mu1, mu2 = np.array([0., 0., 1.]), np.array([1., 2., 1.])
    a, b = np.array([4., 9., 2.]), np.array([1., 1., 2.])
    assert realism.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(10.0)
    assert realism.frechet_distance(mu1, np.diag(a), mu1, np.diag(a)) == pytest.approx(0.0,
                                                                                     abs=1e-12)


def test_frechet_distance_matches_the_standard_fid_formula_on_full_covariances():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 6)) @ rng.normal(size=(6, 6))
    y = rng.normal(size=(150, 6)) @ rng.normal(size=(6, 6)) + 0.5
    mu1, s1 = realism.feature_statistics(x)
    mu2, s2 = realism.feature_statistics(y)
    covmean = linalg.sqrtm(s1 @ s2).real  # what pytorch-fid computes
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean)
    assert realism.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_handles_fewer_samples_than_dimensions():
    # 5 samples in 8 dimensions: singular covariances. Shifting a set leaves its covariance,
    # so the FD is the squared shift; the set against itself scores 0 (up to the square roots
    # of rounding errors in the 4 zero eigenvalues, ~1e-8 each).
    x = np.random.default_rng(1).normal(size=(5, 8))
    shift = np.arange(8) / 10
    stats = realism.feature_statistics(x)
    assert realism.frechet_distance(*stats, *stats) == pytest.approx(0.0, abs=1e-6)
    shifted = realism.feature_statistics(x + shift)
    assert realism.frechet_distance(*stats, *shifted) == pytest.approx((shift ** 2).sum(),
                                                                       abs=1e-6)


def test_frechet_distance_and_statistics_refuse_bad_shapes():
    with pytest.raises(ValueError, match='same dimension'):
        realism.frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match='N >= 2'):
        realism.feature_statistics(np.zeros((1, 4)))


def test_pool_levels_averages_each_level_and_concatenates():
    levels = (torch.arange(2 * 3 * 4 * 4, dtype=torch.float).reshape(2, 3, 4, 4),
              torch.ones(2, 5, 2, 2))
    pooled = realism.pool_levels(levels)
    assert pooled.shape == (2, 8)
    assert torch.equal(pooled[:, :3], levels[0].mean(dim=(2, 3)))
    assert torch.equal(pooled[:, 3:], torch.ones(2, 5))


def test_dataset_image_paths_lists_the_annotated_images(tiny_shapes_root, tmp_path):
    paths = _split(tiny_shapes_root, 'val')
    assert len(paths) == 8 and all(osp.isfile(p) for p in paths)
    with pytest.raises(FileNotFoundError, match='COCO annotation file'):
        realism.dataset_image_paths(str(tmp_path), 'targets.json', 'images/')


def test_meter_scores_the_val_images_against_themselves_as_zero(tiny_shapes_root,
                                                                student_checkpoint):
    val, train = _split(tiny_shapes_root, 'val'), _split(tiny_shapes_root, 'train')
    meter = realism.RealismMeter(STUDENT_CONFIG, student_checkpoint, val, train, batch_size=3)
    features = meter.features(val[:5])
    assert features.shape == (5, 128) and features.dtype == np.float64  # one ViT level, 128 ch
    # Batching does not change a feature (the images have one size: no padding).
    assert np.allclose(meter.features(val[3:5]), features[3:5], atol=1e-5)
    score = meter.score(val)
    # 0 up to rounding (8 samples in 128 dimensions: 121 zero eigenvalues, see
    # frechet_distance), far below the reference of 8 other real images.
    assert abs(score['fd']) < 1e-5 * score['reference_fd']
    assert score['reference_fd'] > 0 and score['images'] == score['reference_images'] == 8
    assert score['val_images'] == 8
    # A set larger than the train split is referenced by the whole train split.
    assert meter.score(val + train[:10])['reference_images'] == 16


def test_a_checkpoint_of_another_model_is_refused(tmp_path):
    teacher = save_random_teacher_checkpoint(str(tmp_path / 'teacher.pth'))
    with pytest.raises(ValueError, match='does not fit the model of'):
        realism.load_feature_detector(STUDENT_CONFIG, teacher)
