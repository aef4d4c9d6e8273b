"""check_config_paths: missing teacher checkpoints and dataset files are named, with where to
get them and the config keys to change (and the config file that sets the path); datasets
without files are never flagged; a teacher checkpoint variable assigned where it changes
nothing is an error whose fix works."""
import os
import os.path as osp

import pytest
from mmengine.config import Config

from conftest import REPO_ROOT, save_random_teacher_checkpoint
from mmdfkd.utils import MissingFilesError, check_config_paths, load_config
from mmdfkd.utils.paths import check_data_files, check_teacher_checkpoints

COCO_ANN_URL = 'http://images.cocodataset.org/annotations/annotations_trainval2017.zip'
COCO_VAL_URL = 'http://images.cocodataset.org/zips/val2017.zip'


def _coco_cfg(data_root: str, **extra) -> Config:
    """The shape of mmdet's coco_detection.py, after variable substitution."""
    dataset = dict(type='CocoDataset', data_root=data_root, backend_args=None,
                   ann_file='annotations/instances_val2017.json',
                   data_prefix=dict(img='val2017/'))
    evaluator = dict(type='CocoMetric', ann_file=data_root + 'annotations/instances_val2017.json')
    return Config(dict(
        data_root=data_root,
        train_dataloader=dict(dataset=dict(type='SyntheticDetDataset', num_images=10,
                                           metainfo=dict(classes=('a', )))),
        val_dataloader=dict(dataset=dataset), test_dataloader=dict(dataset=dataset),
        val_evaluator=evaluator, test_evaluator=evaluator, val_cfg=dict(type='ValLoop'),
        **extra))


def _make_coco(root: str) -> None:
    os.makedirs(osp.join(root, 'annotations'))
    os.makedirs(osp.join(root, 'val2017'))
    open(osp.join(root, 'annotations', 'instances_val2017.json'), 'w').close()


def test_missing_coco_val_names_paths_downloads_and_keys(tmp_path):
    root = str(tmp_path / 'coco') + '/'
    (message, ) = check_data_files(_coco_cfg(root), 'val_dataloader', 'val_evaluator')
    ann = root + 'annotations/instances_val2017.json'
    assert f'{ann} (val_dataloader.dataset.ann_file, val_evaluator.ann_file)' in message
    assert f'{root}val2017/ (val_dataloader.dataset.data_prefix.img)' in message
    assert COCO_ANN_URL in message and COCO_VAL_URL in message
    assert f'unpack them under {root}' in message
    assert ('--cfg-options val_dataloader.dataset.data_root=DIR/ '
            'val_evaluator.ann_file=DIR/annotations/instances_val2017.json') in message
    assert '`data_root = ...`' in message  # the top-level variable is named too
    assert '\n' not in message


def test_only_what_is_missing_is_reported(tmp_path):
    root = str(tmp_path / 'coco') + '/'
    _make_coco(root)
    cfg = _coco_cfg(root)
    check_config_paths(cfg, 'train')  # nothing missing: no error
    check_config_paths(cfg, 'test')
    os.rmdir(root + 'val2017')
    with pytest.raises(MissingFilesError) as info:
        check_config_paths(cfg, 'test')
    message = str(info.value)
    assert message.startswith('test_dataloader needs files')
    assert 'val2017/' in message and 'instances_val2017.json (' not in message
    assert COCO_VAL_URL in message and COCO_ANN_URL not in message


def test_datasets_without_files_and_skipped_loaders_are_not_checked(tmp_path):
    cfg = _coco_cfg(str(tmp_path / 'nowhere') + '/')
    assert check_data_files(cfg, 'train_dataloader') == []  # SyntheticDetDataset
    cfg.val_cfg = None  # no validation: train does not read val files
    check_config_paths(cfg, 'train')
    cfg.val_dataloader.dataset.backend_args = dict(backend='petrel')  # not on the local disk
    assert check_data_files(cfg, 'val_dataloader') == []


def test_wrapped_datasets_and_unknown_files(tmp_path):
    inner = dict(type='CocoDataset', ann_file=str(tmp_path / 'mine.json'),
                 data_prefix=dict(img=str(tmp_path / 'imgs')))
    cfg = Config(dict(train_dataloader=dict(dataset=dict(
        type='ConcatDataset', datasets=[dict(type='RepeatDataset', times=2, dataset=inner)]))))
    (message, ) = check_data_files(cfg, 'train_dataloader')
    assert 'train_dataloader.dataset.datasets.0.dataset.ann_file' in message
    assert 'train_dataloader.dataset.datasets.0.dataset.data_prefix.img' in message
    assert 'Put the dataset there' in message and 'http' not in message
    assert 'train_dataloader.dataset.datasets.0.dataset.ann_file=PATH' in message


def test_missing_teacher_checkpoint_names_url_key_and_variable(tmp_path):
    missing = str(tmp_path / 'teacher.pth')
    url = 'https://download.openmmlab.com/x/teacher.pth'
    cfg = _coco_cfg(str(tmp_path) + '/', teacher_checkpoint=missing, model=dict(
        type='DetectionDistiller',
        teachers=[dict(config='t.py', checkpoint=missing, checkpoint_url=url)]))
    (message, ) = check_teacher_checkpoints(cfg)
    assert repr(missing) in message and f'Download it from {url} to {missing}' in message
    assert '--cfg-options model.teachers.0.checkpoint=PATH' in message
    assert '`teacher_checkpoint = ...`' in message
    cfg.model.teachers = dict(config='t.py', checkpoint=missing)  # one teacher, no URL
    (message, ) = check_teacher_checkpoints(cfg)
    assert 'Train the teacher first' in message
    assert '--cfg-options model.teachers.checkpoint=PATH' in message
    open(missing, 'w').close()
    assert check_teacher_checkpoints(cfg) == []


def test_load_teacher_checkpoint_message_has_url_and_key(tmp_path):
    from torch import nn

    from mmdfkd.models.distillers.teacher_loader import load_teacher_checkpoint
    with pytest.raises(FileNotFoundError) as info:
        load_teacher_checkpoint(nn.Linear(1, 1), str(tmp_path / 'gone.pth'),
                                url='https://example.org/gone.pth',
                                key='model.teachers.1.checkpoint')
    message = str(info.value)
    assert 'gone.pth' in message and 'https://example.org/gone.pth' in message
    assert '--cfg-options model.teachers.1.checkpoint=PATH' in message


# ------------------------------------------------ variables of base configs (a _base_ chain)
DEMO = osp.join(REPO_ROOT, 'configs', 'demo')
# Sets teacher_checkpoint; the demo's distillation configs inherit it.
DISTILLER = osp.join(DEMO, '_base_', 'models', 'distiller_r18_deit_tiny.py')
KD_REAL = osp.join(DEMO, 'kd_deit_tiny_shapes_real.py')
DFKD = osp.join(DEMO, 'dfkd_deit_tiny_shapes.py')


def test_missing_teacher_message_names_the_file_that_sets_the_variable(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the demo's relative checkpoint path does not exist here
    (message, ) = check_teacher_checkpoints(load_config(DFKD))
    assert '--cfg-options model.teachers.0.checkpoint=PATH' in message
    assert f'(or edit `teacher_checkpoint = ...` in the base config {DISTILLER}' in message
    assert 'in a config that inherits it changes nothing' in message
    assert 'dfkd_deit_tiny_shapes.py' not in message  # editing that file would not help
    (message, ) = check_teacher_checkpoints(load_config(DISTILLER))
    assert f'(or edit `teacher_checkpoint = ...` at the top of {DISTILLER})' in message


def test_missing_data_message_names_the_file_that_sets_data_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(osp.join(DEMO, 'retinanet_deit_tiny_shapes.py'))
    (message, ) = check_data_files(cfg, 'train_dataloader')
    shapes = osp.join(DEMO, '_base_', 'datasets', 'shapes.py')
    assert f'(or edit `data_root = ...` in the base config {shapes}' in message
    assert 'at the top of' not in message


def test_teacher_checkpoint_assigned_in_vain_is_an_error_whose_fix_works(tiny_shapes_root,
                                                                          tmp_path, monkeypatch):
    import torch
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    monkeypatch.chdir(tmp_path)
    mine = save_random_teacher_checkpoint(str(tmp_path / 'mine.pth'), seed=1)
    child = tmp_path / 'my_dfkd.py'
    child.write_text(f'_base_ = {DFKD!r}\nteacher_checkpoint = {mine!r}\n')

    cfg = load_config(str(child))
    assert cfg.model.teachers[0].checkpoint != mine  # mmengine: the base already copied it
    with pytest.raises(MissingFilesError) as info:
        check_config_paths(cfg, 'test')
    (message, ) = [line for line in str(info.value).splitlines()
                   if line.startswith('`teacher_checkpoint')]
    assert message.startswith(f'`teacher_checkpoint = {mine!r}` (in {child}) does not reach '
                              'the teacher: model.teachers.0.checkpoint is still')
    assert DISTILLER in message
    assert f'--cfg-options model.teachers.0.checkpoint={mine}' in message

    # The line the message gives, added to the config, makes the variable count.
    fix = message.split(f'or in {child}: ')[1].rstrip('.')
    child.write_text(child.read_text() + fix + '\n')
    cfg = load_config(str(child))
    assert cfg.model.teachers[0].checkpoint == mine
    cfg.merge_from_dict({'test_dataloader.dataset.data_root': tiny_shapes_root + '/',
                         'test_evaluator.ann_file':
                             tiny_shapes_root + '/annotations/instances_val.json'})
    check_config_paths(cfg, 'test')
    teacher = MODELS.build(cfg.model).teachers[0]
    saved = torch.load(mine, weights_only=True)['state_dict']
    torch.testing.assert_close(teacher.state_dict()['backbone.conv1.weight'],
                               saved['backbone.conv1.weight'])


def test_teacher_checkpoint_variable_set_by_cfg_options_is_an_error(tmp_path):
    mine = str(tmp_path / 'mine.pth')
    cfg = load_config(KD_REAL)
    cfg.merge_from_dict({'teacher_checkpoint': mine})
    (message, ) = check_teacher_checkpoints(cfg)
    assert message.startswith(f'`teacher_checkpoint = {mine!r}` (--cfg-options) does not '
                              'reach the teacher')
    assert f'--cfg-options model.teachers.0.checkpoint={mine}' in message


def test_teacher_checkpoint_that_is_a_directory_names_the_files_in_it(tmp_path):
    run_dir = tmp_path / 'teacher_run'
    run_dir.mkdir()
    (run_dir / 'iter_500.pth').touch()
    (run_dir / 'iter_1500.pth').touch()
    cfg = _coco_cfg(str(tmp_path) + '/', model=dict(
        type='DetectionDistiller', teachers=[dict(config='t.py', checkpoint=str(run_dir))]))
    (message, ) = check_teacher_checkpoints(cfg)
    assert 'does not exist' not in message
    assert (f'Teacher checkpoint {run_dir} is a directory, not a checkpoint file; it holds '
            'iter_1500.pth, iter_500.pth') in message
    assert '--cfg-options model.teachers.0.checkpoint=PATH' in message
