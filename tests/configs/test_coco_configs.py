"""The COCO data-free recipes (configs/dfkd_vit_det*.py): they load, name the files they need,
train from sampled targets only, and build with a (random) zoo-shaped teacher."""
import builtins
import os.path as osp

import pytest
import torch

from conftest import REPO_ROOT
from mmdfkd.utils import check_config_paths, load_config, prepare_config
from mmdfkd.utils.config import ConfigOptionError
from mmdfkd.utils.paths import check_teacher_checkpoints

CONFIGS = {name: osp.join(REPO_ROOT, 'configs', name) for name in (
    'dfkd_vit_det.py', 'dfkd_vit_det_deit_small.py', 'dfkd_vit_det_faster_rcnn.py',
    'dfkd_vit_det_convstem.py')}
ZOO = 'https://download.openmmlab.com/mmdetection/v2.0/'
FILE_KEYS = ('ann_file', 'data_prefix', 'data_root', 'img_path', 'LoadImageFromFile')


def _keys_and_values(node):
    """Every key and string value in a nested config."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from _keys_and_values(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _keys_and_values(value)
    elif isinstance(node, str):
        yield node


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_recipe_is_data_free_and_evaluates_on_coco_val(name):
    from mmdet.datasets import CocoDataset
    cfg = load_config(CONFIGS[name])
    assert cfg.model.type == 'DetectionDistiller'
    (teacher, ) = cfg.model.teachers
    assert teacher.config.startswith('mmdet::')
    assert teacher.checkpoint == cfg.teacher_checkpoint
    assert teacher.checkpoint_url.startswith(ZOO)
    assert osp.basename(teacher.checkpoint) == osp.basename(teacher.checkpoint_url)

    # Training reads no file: the dataset only samples targets, with the teacher's classes.
    train = cfg.train_dataloader
    assert train.dataset.type == 'SyntheticDetDataset'
    assert tuple(train.dataset.metainfo.classes) == CocoDataset.METAINFO['classes']
    assert not set(FILE_KEYS) & set(_keys_and_values(train.to_dict()))
    assert train.dataset.draw_targets is False  # the synthesizer draws them for its cohorts
    (hook, ) = cfg.custom_hooks
    assert (hook.type, hook.synthesizer.type) == ('ImageSynthesisHook', 'InversionSynthesizer')
    # The zoo teacher's BN is frozen ImageNet BN.
    assert hook.synthesizer.loss.frozen_bn_prior is True

    # Evaluation on COCO val2017 under data_root.
    for loader, evaluator in (('val_dataloader', 'val_evaluator'),
                              ('test_dataloader', 'test_evaluator')):
        dataset = cfg[loader].dataset
        assert (dataset.type, dataset.data_root) == ('CocoDataset', cfg.data_root)
        assert dataset.ann_file == 'annotations/instances_val2017.json'
        assert cfg[evaluator].type == 'CocoMetric'
        assert cfg[evaluator].ann_file == cfg.data_root + dataset.ann_file
    assert cfg.data_root == 'data/coco/'
    assert cfg.train_cfg.type == 'IterBasedTrainLoop'

    (message, ) = check_teacher_checkpoints(cfg)  # the checkpoints are not in the repo
    assert teacher.checkpoint_url in message and 'model.teachers.0.checkpoint' in message


def test_deit_small_recipe_uses_the_deit_small_student():
    student = load_config(osp.join(REPO_ROOT, 'configs', 'students',
                                   'retinanet_deit_small_sfp_coco.py')).model
    assert load_config(CONFIGS['dfkd_vit_det_deit_small.py']).model.student == student


def test_the_keys_the_errors_name_are_the_ones_that_work(tmp_path):
    """mmengine substitutes variables before --cfg-options apply: an option setting the
    variable is refused, and the keys the refusal names work."""
    ckpt = tmp_path / 'teacher.pth'
    ckpt.touch()
    root = tmp_path / 'coco'
    (root / 'val2017').mkdir(parents=True)
    (root / 'annotations').mkdir()
    (root / 'annotations' / 'instances_val2017.json').touch()
    ann = f'{root}/annotations/instances_val2017.json'

    with pytest.raises(ConfigOptionError) as info:
        prepare_config(CONFIGS['dfkd_vit_det.py'], cfg_options={
            'teacher_checkpoint': str(ckpt), 'data_root': f'{root}/'})
    options = dict(setting.split('=', 1) for line in str(info.value).splitlines()
                   for setting in line.split(' --cfg-options ')[-1].split(' '))
    expected = {'model.teachers.0.checkpoint': str(ckpt)}
    for split in ('val', 'test'):
        expected.update({f'{split}_dataloader.dataset.data_root': f'{root}/',
                         f'{split}_evaluator.ann_file': ann})
    assert options == expected
    cfg = prepare_config(CONFIGS['dfkd_vit_det.py'], cfg_options=options)
    check_config_paths(cfg, 'train')
    check_config_paths(cfg, 'test')


def test_train_dataloader_opens_no_file(tmp_path, monkeypatch):
    from mmdet.utils import register_all_modules
    from mmengine.runner import Runner

    import mmdfkd  # noqa: F401  (registers SyntheticDetDataset)
    register_all_modules()
    loader_cfg = load_config(CONFIGS['dfkd_vit_det.py']).train_dataloader
    loader_cfg.update(batch_size=2, num_workers=0, persistent_workers=False)
    monkeypatch.chdir(tmp_path)  # no data/ here
    loader = Runner.build_dataloader(loader_cfg.to_dict())

    def no_open(*args, **kwargs):
        raise AssertionError(f'the train dataloader opened {args[0]!r}')

    monkeypatch.setattr(builtins, 'open', no_open)
    batch = next(iter(loader))
    monkeypatch.undo()
    # Image meta only (draw_targets=False): the synthesizer makes the images, and draws the
    # targets of the batches it starts images for from the dataset.
    assert 'inputs' not in batch
    samples = batch['data_samples']
    assert [s.img_shape for s in samples] == [(320, 320)] * 2
    assert not any('gt_instances' in s for s in samples)
    for sample in samples:
        boxes, labels = loader.dataset.sample_targets(sample.img_id)  # DIODE's onebox targets
        assert boxes.shape == (1, 4) and labels.shape == (1, )


@pytest.mark.parametrize('name, terms', [
    ('dfkd_vit_det.py', ['PKDLoss_neck', 'ClassificationKDLoss_bbox_head', 'PseudoBoxLoss']),
    ('dfkd_vit_det_faster_rcnn.py', ['PKDLoss_neck', 'PseudoBoxLoss']),
    ('dfkd_vit_det_convstem.py',
     ['PKDLoss_neck', 'ClassificationKDLoss_bbox_head', 'PseudoBoxLoss']),
])
def test_recipe_builds_and_inverts_with_a_random_zoo_shaped_teacher(name, terms, tmp_path):
    """Build the distiller (an R50 teacher loaded strictly from a random fp16 state dict of
    the zoo architecture) and take one inversion step with the recipe's settings."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    from mmdfkd.models.distillers.teacher_loader import resolve_teacher_config
    from mmdfkd.models.synthesis import Targets, build_synthesizer
    register_all_modules()
    torch.manual_seed(0)
    cfg = load_config(CONFIGS[name])
    teacher_cfg = resolve_teacher_config(cfg.model.teachers[0].config)
    if 'rpn_proposal' in teacher_cfg.train_cfg:  # fewer RoIs per step, to keep the test fast
        teacher_cfg.train_cfg.rpn_proposal.max_per_img = 64
        teacher_cfg.train_cfg.rcnn.sampler.num = 32
        cfg.model.teachers[0].config = teacher_cfg
    teacher = MODELS.build(teacher_cfg)
    ckpt = str(tmp_path / 'teacher.pth')
    torch.save({k: v.half() if v.is_floating_point() else v
                for k, v in teacher.state_dict().items()}, ckpt)
    cfg.model.teachers[0].checkpoint = ckpt
    model = MODELS.build(cfg.model)
    assert [term.name for term in model.terms] == terms
    assert model.student.bbox_head.num_classes == 80
    if 'conv_stem' in cfg.model.student.backbone:  # the teacher's frozen R50 stem, inherited
        model.init_weights()
        stem = model.student.backbone.vit.patch_embed.stem
        assert torch.equal(stem.layer1[2].conv3.weight,
                           model.teachers[0].backbone.layer1[2].conv3.weight)
        assert not any(p.requires_grad for p in stem.parameters())

    synthesizer_cfg = dict(cfg.custom_hooks[0].synthesizer, total_steps=1, lowres_steps=0,
                           fp_sampling=None)
    synthesizer = build_synthesizer(synthesizer_cfg, model, dataset=None)
    assert synthesizer.loss.bn_prior == [True]  # frozen ImageNet BN, kept by frozen_bn_prior
    rng = torch.Generator().manual_seed(0)
    meta = [dict(img_shape=(128, 128), ori_shape=(128, 128), scale_factor=(1., 1.))]
    cohort = synthesizer.start(
        Targets([torch.tensor([[16., 16., 96., 112.]])], [torch.tensor([3])], meta), rng)
    log = synthesizer.refine(cohort, 1, rng)
    assert {'syn_det_t0', 'syn_bn_t0', 'syn_tv_l1'} <= set(log)
    assert all(torch.isfinite(torch.tensor(v)) for v in log.values())
    assert synthesizer.finished(cohort)
    assert tuple(synthesizer.images(cohort).shape) == (1, 3, 128, 128)
