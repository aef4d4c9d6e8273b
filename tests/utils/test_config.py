"""Config loading for the tools: files, ``mmdet::`` paths and clear errors; which file of a
``_base_`` chain set a value."""
import os.path as osp

import pytest
from mmengine.config import Config

from conftest import TEACHER_CONFIG
from demo.shapes_coco import SHAPES_CLASSES
from mmdfkd.utils import load_config, prepare_config, scale_iter_schedule
from mmdfkd.utils.config import (ConfigOptionError, VariableBinding, assigning_file, config_chain,
                                 substituted_variable_problems, variable_binding)


def test_loads_mmdet_package_config():
    cfg = load_config('mmdet::retinanet/retinanet_r50_fpn_1x_coco.py')
    assert cfg.model.type == 'RetinaNet'
    assert cfg.model.backbone.depth == 50


def test_missing_config_file_names_the_path(tmp_path):
    missing = str(tmp_path / 'no_such_config.py')
    with pytest.raises(FileNotFoundError, match='no_such_config.py'):
        load_config(missing)


def test_missing_package_config_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match='retinanet/no_such.py'):
        load_config('mmdet::retinanet/no_such.py')


def test_prepare_config_defaults_work_dir_and_applies_options():
    cfg = prepare_config(TEACHER_CONFIG, cfg_options={'train_cfg.max_iters': 7})
    assert cfg.work_dir == osp.join('./work_dirs', 'retinanet_r18_shapes')
    assert cfg.train_cfg.max_iters == 7
    assert cfg.launcher == 'none'
    assert prepare_config(TEACHER_CONFIG, work_dir='elsewhere').work_dir == 'elsewhere'


def test_demo_teacher_config_matches_the_generated_classes_and_trains_its_bn():
    cfg = load_config(TEACHER_CONFIG)
    assert tuple(cfg.classes) == SHAPES_CLASSES
    assert cfg.model.bbox_head.num_classes == len(SHAPES_CLASSES)
    assert cfg.model.backbone.norm_eval is False
    assert cfg.model.backbone.init_cfg is None  # nothing to download
    assert cfg.model.neck.norm_cfg.type == cfg.model.bbox_head.norm_cfg.type == 'BN'


def test_scale_iter_schedule_keeps_the_shape():
    cfg = load_config(TEACHER_CONFIG)  # 1500 iters: warm-up 0-100, cosine 100-1500
    scale_iter_schedule(cfg, 750)
    assert cfg.train_cfg.max_iters == 750
    assert cfg.train_cfg.val_interval == 750
    assert cfg.default_hooks.checkpoint.interval == 750
    warmup, cosine = cfg.param_scheduler
    assert (warmup.begin, warmup.end) == (0, 50)
    assert (cosine.begin, cosine.end) == (50, 750)


def test_scale_iter_schedule_rejects_bad_input():
    cfg = load_config(TEACHER_CONFIG)
    with pytest.raises(ValueError, match='at least 1'):
        scale_iter_schedule(cfg, 0)
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=12)
    with pytest.raises(ValueError, match='by epoch'):
        scale_iter_schedule(cfg, 10)


DEMO = osp.dirname(TEACHER_CONFIG)
BASE = osp.join(DEMO, '_base_')
DISTILLER = osp.join(BASE, 'models', 'distiller_r18_deit_tiny.py')  # sets teacher_checkpoint
SHAPES_DATA = osp.join(BASE, 'datasets', 'shapes.py')  # sets data_root
DFKD = osp.join(DEMO, 'dfkd_deit_tiny_shapes.py')


def test_config_chain_lists_the_file_then_its_bases():
    chain = config_chain(DFKD)
    assert chain[:4] == [DFKD, DISTILLER, osp.join(BASE, 'models', 'retinanet_deit_tiny_shapes.py'),
                         osp.join(BASE, 'models', 'retinanet_r18_shapes.py')]
    # then the teacher model's own bases (mmdet:: paths), then the other bases of DFKD
    assert chain[4].endswith(osp.join('_base_', 'models', 'retinanet_r50_fpn.py'))
    assert chain.index(SHAPES_DATA) < chain.index(osp.join(BASE, 'default_runtime.py'))
    assert len(chain) == len(set(chain)) > 10


def test_variable_binding_finds_the_file_whose_variable_a_key_holds(tmp_path):
    cfg = load_config(DFKD)
    checkpoint = cfg.model.teachers[0].checkpoint
    assert variable_binding(cfg, 'checkpoint', checkpoint) == VariableBinding(
        'teacher_checkpoint', DISTILLER, False)
    assert variable_binding(load_config(DISTILLER), 'checkpoint', checkpoint).top
    assert variable_binding(cfg, 'checkpoint', 'other.pth') is None
    assert variable_binding(cfg, 'data_root', cfg.data_root) == VariableBinding(
        'data_root', SHAPES_DATA, False)
    assert assigning_file(cfg, 'teacher_checkpoint', checkpoint) == DISTILLER
    assert assigning_file(cfg, 'teacher_checkpoint', 'other.pth') is None


# --------------------------------------- --cfg-options that set a variable substituted already
def _chain(tmp_path):
    """A base config whose variables are copied into keys, and a config inheriting it."""
    (tmp_path / 'base.py').write_text(
        "root = 'data/x/'\n"
        "steps = 10\n"
        "meta = dict(classes=('a', 'b'))\n"
        "train_dataloader = dict(dataset=dict(data_root=root, metainfo=meta))\n"
        "val_dataloader = dict(batch_size=1, dataset=dict(data_root=root))\n"
        "test_dataloader = val_dataloader\n"
        "val_evaluator = dict(ann_file=root + 'val.json')\n"
        "train_cfg = dict(max_iters=steps, val_interval=steps)\n"
        "unused = 3\n")
    child = tmp_path / 'child.py'
    child.write_text("_base_ = './base.py'\n"
                     "val_dataloader = dict(dataset=dict(metainfo={{_base_.meta}}))\n")
    return str(child)


def test_cfg_option_setting_a_substituted_variable_is_refused_with_the_keys_to_set(tmp_path):
    child = _chain(tmp_path)
    with pytest.raises(ConfigOptionError) as info:
        prepare_config(child, cfg_options={'root': 'elsewhere/', 'steps': 4})
    root_line, steps_line = str(info.value).splitlines()
    assert root_line.startswith('--cfg-options root=elsewhere/ changes nothing: `root` is a '
                                f'variable of the config files ({tmp_path / "base.py"} sets it)')
    # The key given the variable itself, and the one given an expression of it.
    assert root_line.endswith('Set those keys instead: --cfg-options '
                              'train_dataloader.dataset.data_root=elsewhere/ '
                              'val_dataloader.dataset.data_root=elsewhere/ '
                              'test_dataloader.dataset.data_root=elsewhere/ '
                              'val_evaluator.ann_file=elsewhere/val.json')
    assert steps_line.endswith('--cfg-options train_cfg.max_iters=4 train_cfg.val_interval=4')

    # A dotted option on a variable; a variable reached through {{_base_.x}}.
    (line, ) = substituted_variable_problems(load_config(child), {'meta.classes': ['c']})
    assert line.endswith('--cfg-options train_dataloader.dataset.metainfo.classes=[c] '
                         'val_dataloader.dataset.metainfo.classes=[c]')


def test_cfg_options_that_take_effect_are_applied(tmp_path):
    child = _chain(tmp_path)
    cfg = prepare_config(child, cfg_options={
        'train_dataloader.dataset.data_root': 'elsewhere/',  # the key itself
        'val_dataloader.batch_size': 4,  # the Runner reads it, though a file copies it too
        'unused': 5,  # a variable no file uses: tools may read it
        'randomness': dict(seed=1)})  # a new key
    assert cfg.train_dataloader.dataset.data_root == 'elsewhere/'
    assert (cfg.val_dataloader.batch_size, cfg.unused, cfg.randomness.seed) == (4, 5, 1)
    assert substituted_variable_problems(Config(dict(root='a', x=dict(y='a'))),
                                         {'root': 'b'}) == []  # built in memory: no files


def test_teacher_checkpoint_option_names_the_key_that_works(tmp_path):
    ckpt = str(tmp_path / 'teacher.pth')
    with pytest.raises(ConfigOptionError) as info:
        prepare_config(DFKD, cfg_options={'teacher_checkpoint': ckpt})
    message = str(info.value)
    assert f'variable of the config files ({DISTILLER} sets it)' in message
    fix = message.split('Set those keys instead: --cfg-options ')[1]
    assert fix == f'model.teachers.0.checkpoint={ckpt}'
    key, value = fix.split('=')
    assert prepare_config(DFKD, cfg_options={key: value}).model.teachers[0].checkpoint == ckpt
