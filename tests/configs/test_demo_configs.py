"""The demo configs (configs/demo/): leaves composed of _base_ pieces, synthesis hooks only where
images are synthesized during training, atomic checkpoints, students keeping two, and the
data-free variants differing only in where their images come from."""
import ast
import glob
import os.path as osp

import pytest
from mmengine.config import Config

from conftest import REPO_ROOT, TEACHER_CONFIG
from demo.shapes_coco import SHAPES_CLASSES
from mmdfkd.models.distillers.teacher_loader import resolve_teacher_config
from mmdfkd.utils import load_config

DEMO = osp.join(REPO_ROOT, 'configs', 'demo')
LEAVES = sorted(glob.glob(osp.join(DEMO, '*.py')))
ALL_CONFIGS = sorted(glob.glob(osp.join(REPO_ROOT, 'configs', '**', '*.py'), recursive=True))
SHIPPED = [p for p in ALL_CONFIGS if f'{osp.sep}_base_{osp.sep}' not in p]
DFKD = osp.join(DEMO, 'dfkd_deit_tiny_shapes.py')


def _name(path: str) -> str:
    return osp.relpath(path, REPO_ROOT)


def _bases(path: str) -> list:
    """The files ``path`` names in ``_base_``, as absolute paths (``mmdet::`` ones as given)."""
    return [base if '::' in base else osp.normpath(osp.join(osp.dirname(path), base))
            for base in Config._get_base_files(path)]


@pytest.mark.parametrize('path', LEAVES, ids=_name)
def test_demo_leaves_compose_base_pieces(path):
    bases = _bases(path)
    assert bases, f'{_name(path)} has no _base_'
    for base in bases:  # a piece of configs/demo/_base_/, never another leaf
        assert base.startswith(osp.join(DEMO, '_base_') + osp.sep), (path, base)
        # A piece builds on mmdet's configs or on other pieces only.
        for inner in _bases(base):
            assert '::' in inner or inner.startswith(osp.join(DEMO, '_base_')), (base, inner)


def test_no_config_empties_custom_hooks():
    """`custom_hooks = []` would also drop the hooks a user's config adds."""
    for path in ALL_CONFIGS:
        with open(path) as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == 'custom_hooks' for t in node.targets):
                assert not (isinstance(node.value, ast.List) and not node.value.elts), path


@pytest.mark.parametrize('path', SHIPPED, ids=_name)
def test_synthesis_hook_only_where_images_are_synthesized_during_training(path):
    cfg = Config.fromfile(path)
    hooks = [h for h in cfg.get('custom_hooks', []) if h.type == 'ImageSynthesisHook']
    synthesizes = cfg.train_dataloader.dataset.type == 'SyntheticDetDataset'
    assert len(hooks) == (1 if synthesizes else 0)
    for hook in hooks:  # "generator" names only the network of a GeneratorSynthesizer
        assert not [key for key in hook if 'generator' in key]
        assert not [key for key in hook.synthesizer if 'generator' in key]
        # Inversion draws a batch's targets when it starts images for it, procedural images
        # have none; the generator trains on every batch's targets.
        generator = hook.synthesizer.type == 'GeneratorSynthesizer'
        assert cfg.train_dataloader.dataset.get('draw_targets', True) is generator


@pytest.mark.parametrize('path', SHIPPED, ids=_name)
def test_checkpoints_are_atomic_and_students_keep_two(path):
    checkpoint = Config.fromfile(path).default_hooks.checkpoint
    assert checkpoint.backend_args == dict(backend='atomic_local')
    keep = checkpoint.get('max_keep_ckpts', -1)
    if path == TEACHER_CONFIG:
        assert keep == 1
    else:  # -1 keeps every checkpoint
        assert keep == -1 or keep >= 2, f'{_name(path)} keeps {keep} checkpoint(s)'


def test_the_teachers_one_checkpoint_is_not_inherited():
    """The teacher keeps one checkpoint; a config that inherits its schedule keeps two."""
    teacher_schedule = osp.join(DEMO, '_base_', 'schedules', 'teacher_1500it.py')
    assert teacher_schedule in _bases(TEACHER_CONFIG)
    assert load_config(TEACHER_CONFIG).default_hooks.checkpoint.max_keep_ckpts == 1
    for path in ALL_CONFIGS:
        if path != TEACHER_CONFIG:
            assert TEACHER_CONFIG not in _bases(path)
            if teacher_schedule in _bases(path):
                assert load_config(path).default_hooks.checkpoint.max_keep_ckpts == 2


def test_the_distillers_teacher_is_the_demo_teacher():
    teacher = load_config(DFKD).model.teachers[0]
    assert resolve_teacher_config(teacher.config) == load_config(TEACHER_CONFIG).model
    assert load_config(TEACHER_CONFIG).model.bbox_head.num_classes == len(SHAPES_CLASSES)


@pytest.mark.parametrize('variant', ['dfkd_generator_deit_tiny_shapes.py',
                                     'dfkd_images_deit_tiny_shapes.py',
                                     'dfkd_bank_deit_tiny_shapes.py'])
def test_data_free_variants_differ_only_in_where_the_images_come_from(variant):
    """Same distiller, terms, schedule and evaluation as the online inversion config; only
    the train data and the synthesis hook differ (and the bank size, a setting of the
    synthesis)."""
    where = ('train_dataloader', 'train_pipeline', 'bank_root', 'custom_hooks',
             'num_synthetic')

    def recipe(path):
        return {k: v for k, v in Config.fromfile(path).to_dict().items() if k not in where}

    assert recipe(osp.join(DEMO, variant)) == recipe(DFKD)


def test_real_kd_from_the_involution_teacher_differs_from_the_cnn_ones_only_in_the_teacher():
    """The denominator of the involution teacher's synthetic / real ratio: the real-image KD
    baseline with the involution teacher in place of the CNN teacher, nothing else changed."""
    cnn = Config.fromfile(osp.join(DEMO, 'kd_deit_tiny_shapes_real.py')).to_dict()
    rednet = Config.fromfile(osp.join(DEMO, 'kd_rednet26_deit_tiny_shapes_real.py')).to_dict()
    (teacher, ) = rednet['model'].pop('teachers')
    cnn['model'].pop('teachers')
    assert rednet == cnn
    assert resolve_teacher_config(teacher['config']) == load_config(
        osp.join(DEMO, 'retinanet_rednet26_shapes.py')).model
    assert teacher['checkpoint'] == 'work_dirs/demo/teacher_rednet26/iter_1500.pth'


@pytest.mark.parametrize('inverted, procedural', [
    ('dfkd_images_mosaic_deit_tiny_shapes.py', 'dfkd_procedural_mosaic_deit_tiny_shapes.py'),
    ('dfkd_rednet26_images_mosaic_deit_tiny_shapes.py',
     'dfkd_rednet26_procedural_mosaic_deit_tiny_shapes.py'),
    ('dfkd_ensemble_images_mosaic_deit_tiny_shapes.py',
     'dfkd_ensemble_procedural_mosaic_deit_tiny_shapes.py'),
    ('dfkd_vit256_images_mosaic_deit_tiny_shapes.py',
     'dfkd_vit256_procedural_mosaic_deit_tiny_shapes.py')])
def test_procedural_mosaics_differ_from_inverted_ones_only_in_the_images(inverted, procedural):
    """Same teacher, terms, mosaic pipeline and schedule; the images are the dead-leaves set,
    made by the same synthesis config for every teacher."""
    where = ('bank_root', 'synthesis_config', 'train_dataloader')

    def recipe(name):
        return {k: v for k, v in Config.fromfile(osp.join(DEMO, name)).to_dict().items()
                if k not in where}

    assert recipe(procedural) == recipe(inverted)
    cfg = Config.fromfile(osp.join(DEMO, procedural))
    assert cfg.synthesis_config == 'dfkd_procedural_deit_tiny_shapes.py'
    bank = 'work_dirs/demo/procedural_bank/'
    assert cfg.train_dataloader.dataset.data_root == cfg.bank_root == bank
    assert cfg.train_dataloader.dataset.pipeline == Config.fromfile(
        osp.join(DEMO, inverted)).train_dataloader.dataset.pipeline


@pytest.mark.parametrize('teacher', ['', 'rednet26_', 'vit256_'])
def test_the_fourier_inversion_differs_from_the_demos_only_in_what_adam_updates(teacher):
    """Same teacher, losses, steps and schedule as the teacher's pixel inversion; the images
    are Fourier spectra, with the learning rate that moves them as far. The training config
    differs from the pixel images' only in its bank."""
    pixels = Config.fromfile(osp.join(DEMO, f'dfkd_{teacher}deit_tiny_shapes.py')).to_dict()
    fourier = Config.fromfile(
        osp.join(DEMO, f'dfkd_{teacher}fourier_deit_tiny_shapes.py')).to_dict()
    hook_p, hook_f = pixels.pop('custom_hooks'), fourier.pop('custom_hooks')
    assert fourier == pixels
    synth_p, synth_f = hook_p[0].pop('synthesizer'), hook_f[0].pop('synthesizer')
    assert hook_f == hook_p
    assert synth_f.pop('parameterization') == dict(type='fourier', decay=1.0)
    assert (synth_f.pop('lr'), synth_p.pop('lr')) == (0.2, 0.05)
    synth_p['loss'].pop('adi_weight')  # 0, the default
    assert synth_f == synth_p

    where = ('bank_root', 'synthesis_config', 'train_dataloader')

    def recipe(name):
        return {k: v for k, v in Config.fromfile(osp.join(DEMO, name)).to_dict().items()
                if k not in where}

    training = f'dfkd_{teacher}fourier_images_mosaic_deit_tiny_shapes.py'
    assert recipe(training) == recipe(f'dfkd_{teacher}images_mosaic_deit_tiny_shapes.py')
    assert Config.fromfile(osp.join(DEMO, training)).synthesis_config == \
        f'dfkd_{teacher}fourier_deit_tiny_shapes.py'


def _synthesizer_and_rest(name: str) -> tuple:
    """A demo config as a dict, split into its (one) hook's synthesizer and everything else."""
    cfg = Config.fromfile(osp.join(DEMO, name)).to_dict()
    (hook, ) = cfg.pop('custom_hooks')
    return hook.pop('synthesizer'), dict(cfg, hook=hook)


def test_the_short_inversion_of_dead_leaves_differs_from_the_demos_only_in_start_and_steps():
    """Same teacher, losses and weights as the demo's inversion; it starts from dead leaves and
    refines them for 40 full-resolution steps (no low-resolution phase), the false-positive
    sampling scaled to those steps. The training config differs from the demo's mosaics only in
    its bank."""
    demo, demo_rest = _synthesizer_and_rest('dfkd_deit_tiny_shapes.py')
    leaves, leaves_rest = _synthesizer_and_rest('dfkd_leaves_refined_deit_tiny_shapes.py')
    assert leaves_rest == demo_rest
    assert leaves.pop('init') == 'dead_leaves' and 'init' not in demo
    assert (leaves.pop('total_steps'), demo.pop('total_steps')) == (40, 80)
    assert (leaves.pop('lowres_steps'), demo.pop('lowres_steps')) == (0, 60)
    assert leaves.pop('fp_sampling') == dict(start=20, interval=10, score_thr=0.5)
    demo.pop('fp_sampling'), demo.pop('lowres_scale'), demo['loss'].pop('adi_weight')
    assert leaves.pop('steps_per_iter') == 5 and demo.pop('steps_per_iter') == 6
    assert leaves == demo

    where = ('bank_root', 'synthesis_config', 'train_dataloader')

    def recipe(name):
        return {k: v for k, v in Config.fromfile(osp.join(DEMO, name)).to_dict().items()
                if k not in where}

    training = 'dfkd_leaves_refined_images_mosaic_deit_tiny_shapes.py'
    assert recipe(training) == recipe('dfkd_images_mosaic_deit_tiny_shapes.py')
    cfg = Config.fromfile(osp.join(DEMO, training))
    assert cfg.synthesis_config == 'dfkd_leaves_refined_deit_tiny_shapes.py'
    assert cfg.train_dataloader.dataset.pipeline == Config.fromfile(
        osp.join(DEMO, 'dfkd_images_mosaic_deit_tiny_shapes.py')).train_dataloader.dataset.pipeline


def test_the_colour_randomized_mosaics_add_only_photometric_distortion():
    """The demo's mosaic recipe, with mmdet's PhotoMetricDistortion as the last augmentation."""
    mosaic = Config.fromfile(osp.join(DEMO, 'dfkd_images_mosaic_deit_tiny_shapes.py')).to_dict()
    photo = Config.fromfile(
        osp.join(DEMO, 'dfkd_images_mosaic_photometric_deit_tiny_shapes.py')).to_dict()
    pipeline = photo['train_dataloader']['dataset'].pop('pipeline')
    expected = mosaic['train_dataloader']['dataset'].pop('pipeline')
    assert pipeline == expected[:-1] + [dict(type='PhotoMetricDistortion'), expected[-1]]
    photo.pop('train_pipeline'), mosaic.pop('train_pipeline')
    assert photo == mosaic


def test_the_competition_config_adds_only_the_competition_term_to_the_online_inversion():
    demo, demo_rest = _synthesizer_and_rest('dfkd_deit_tiny_shapes.py')
    competition, rest = _synthesizer_and_rest('dfkd_competition_deit_tiny_shapes.py')
    demo_rest.pop('num_synthetic')  # the size of the demo's bank: nothing is stored here
    assert rest == demo_rest
    assert (competition['loss'].pop('adi_weight'), demo['loss'].pop('adi_weight')) == (100., 0.)
    assert competition == demo


def test_real_kd_without_ground_truth_has_exactly_the_data_free_terms():
    """The reference that isolates the images: the data-free distiller (no ground truth,
    inherited head) on the real train images with the real-data pipeline of the GT reference."""
    nogt = Config.fromfile(osp.join(DEMO, 'kd_deit_tiny_shapes_real_nogt.py'))
    assert nogt.model == Config.fromfile(DFKD).model
    assert nogt.model.gt_loss_weight == 0
    assert [t for t in nogt.model.distill_losses if t.type == 'PseudoBoxLoss'][0].keep_gt is False
    real = Config.fromfile(osp.join(DEMO, 'kd_deit_tiny_shapes_real.py'))
    assert nogt.train_dataloader == real.train_dataloader
    assert [t for t in real.model.distill_losses if t.type == 'PseudoBoxLoss'][0].keep_gt is True


def test_the_augmented_inversion_adds_only_zoom_and_colour_shift():
    demo, demo_rest = _synthesizer_and_rest('dfkd_deit_tiny_shapes.py')
    augmented, rest = _synthesizer_and_rest('dfkd_augmented_deit_tiny_shapes.py')
    assert rest == demo_rest
    extra = augmented['loss'].pop('augment')
    assert extra == dict(demo['loss'].pop('augment'), zoom=0.3, color=0.1)
    demo['loss'].pop('adi_weight')  # 0, the default
    assert augmented == demo

    training = Config.fromfile(osp.join(DEMO, 'dfkd_augmented_images_mosaic_deit_tiny_shapes.py'))
    mosaic = Config.fromfile(osp.join(DEMO, 'dfkd_images_mosaic_deit_tiny_shapes.py'))
    assert training.synthesis_config == 'dfkd_augmented_deit_tiny_shapes.py'
    assert training.model == mosaic.model
    assert training.train_dataloader.dataset.pipeline == mosaic.train_dataloader.dataset.pipeline


@pytest.mark.parametrize('plain,hybrid', [
    ('dfkd_images_mosaic_deit_tiny_shapes.py', 'dfkd_convstem_images_mosaic_deit_tiny_shapes.py'),
    ('kd_deit_tiny_shapes_real.py', 'kd_convstem_deit_tiny_shapes_real.py')])
def test_the_hybrid_student_configs_change_only_the_students_tokenizer_and_inheritance(
        plain, hybrid):
    """The data-free row and its real-image reference, with the teacher's stem under the ViT."""
    plain, hybrid = (Config.fromfile(osp.join(DEMO, name)).to_dict() for name in (plain, hybrid))
    backbone = hybrid['model']['student']['backbone']
    stem = backbone.pop('conv_stem')
    assert (backbone.pop('spt'), plain['model']['student']['backbone'].pop('spt')) == (False,
                                                                                      True)
    assert stem['type'] == 'ResNet' and stem['depth'] == 18 and stem['num_stages'] == 1
    # 4 ViT blocks instead of 6 pay for the stem (the student stays lighter than the teacher).
    assert (backbone['timm_kwargs'].pop('depth'),
            plain['model']['student']['backbone']['timm_kwargs'].pop('depth')) == (4, 6)
    assert stem['frozen_stages'] == 1 and stem['norm_eval'] is True
    assert hybrid['model'].pop('inherit') == [
        'bbox_head', dict(student='backbone.vit.patch_embed.stem', teacher='backbone')]
    assert plain['model'].pop('inherit') == ['bbox_head']
    for cfg in (plain, hybrid):  # the two values the hybrid distillers merge
        cfg.pop('conv_stem_student', None), cfg.pop('conv_stem_inherit', None)
    assert hybrid == plain
