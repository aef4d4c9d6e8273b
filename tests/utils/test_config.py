"""Config loading for the tools: files, ``mmdet::`` paths and clear errors; which file of a
``_base_`` chain set a value."""
import os.path as osp

import pytest

from conftest import TEACHER_CONFIG
from mmdfkd.datasets.shapes_coco import SHAPES_CLASSES
from mmdfkd.utils import load_config, prepare_config, scale_iter_schedule
from mmdfkd.utils.config import VariableBinding, assigning_file, config_chain, variable_binding


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
KD_REAL = osp.join(DEMO, 'kd_deit_tiny_shapes_real.py')
DFKD = osp.join(DEMO, 'dfkd_deit_tiny_shapes.py')


def test_config_chain_lists_the_file_then_its_bases():
    chain = config_chain(DFKD)
    assert chain[:4] == [DFKD, KD_REAL, osp.join(DEMO, 'retinanet_deit_tiny_shapes.py'),
                         TEACHER_CONFIG]
    # then mmdet's own bases (mmdet:: paths), each once
    assert chain[4].endswith(osp.join('retinanet', 'retinanet_r50_fpn_1x_coco.py'))
    assert len(chain) == len(set(chain)) > 5


def test_variable_binding_finds_the_file_whose_variable_a_key_holds(tmp_path):
    cfg = load_config(DFKD)
    checkpoint = cfg.model.teachers[0].checkpoint
    assert variable_binding(cfg, 'checkpoint', checkpoint) == VariableBinding(
        'teacher_checkpoint', KD_REAL, False)
    assert variable_binding(load_config(KD_REAL), 'checkpoint', checkpoint).top
    assert variable_binding(cfg, 'checkpoint', 'other.pth') is None
    assert variable_binding(cfg, 'data_root', cfg.data_root) == VariableBinding(
        'data_root', TEACHER_CONFIG, False)
    assert assigning_file(cfg, 'teacher_checkpoint', checkpoint) == KD_REAL
    assert assigning_file(cfg, 'teacher_checkpoint', 'other.pth') is None
