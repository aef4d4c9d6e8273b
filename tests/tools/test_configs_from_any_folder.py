"""The demo distillation configs work from any working directory: with mmdet's own
tools/train.py and tools/test.py (the copies installed with mmdet), and with this project's
tools/train.py on a user config in the user's own folder that inherits a demo config. The
teacher config is named as '{{fileDirname}}/...', which mmengine resolves to the folder of the
file that names it."""
import importlib.util
import os.path as osp

import pytest

from conftest import REPO_ROOT, run_tool, save_random_teacher_checkpoint

DEMO = osp.join(REPO_ROOT, 'configs', 'demo')


def _mmdet_tool(name: str) -> str:
    """A tool shipped inside the installed mmdet package (``mmdet/.mim/tools/``)."""
    (package_dir, ) = importlib.util.find_spec('mmdet').submodule_search_locations
    path = osp.join(package_dir, '.mim', 'tools', name)
    assert osp.isfile(path), f'mmdet ships no {path}'
    return path


def _short_run_options(data_root: str, teacher_ckpt: str) -> list:
    """--cfg-options that point a demo distillation config to absolute data and teacher paths
    and shorten it to 2 iterations on small batches."""
    options = [f'model.teachers.0.checkpoint={teacher_ckpt}',
               'model.student.test_cfg.score_thr=0.0',  # a random student scores near 0.01
               'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
               'default_hooks.logger.interval=1']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        options += [f'{loader}.dataset.data_root={data_root}/', f'{loader}.batch_size=2',
                    f'{loader}.num_workers=0', f'{loader}.persistent_workers=False']
    for evaluator in ('val_evaluator', 'test_evaluator'):
        options.append(f'{evaluator}.ann_file={data_root}/annotations/instances_val.json')
    return options


@pytest.fixture(scope='module')
def teacher_ckpt(tmp_path_factory) -> str:
    return save_random_teacher_checkpoint(str(tmp_path_factory.mktemp('teacher') / 't.pth'))


def test_mmdet_own_tools_train_and_test_a_demo_distillation_config(tiny_shapes_root,
                                                                    teacher_ckpt, tmp_path):
    elsewhere = tmp_path / 'elsewhere'  # not the repository, nor configs/demo
    elsewhere.mkdir()
    config = osp.join(DEMO, 'kd_deit_tiny_shapes_real.py')
    options = _short_run_options(tiny_shapes_root, teacher_ckpt)
    work_dir = str(tmp_path / 'work')

    train = run_tool([_mmdet_tool('train.py'), config, '--work-dir', work_dir,
                      '--cfg-options', *options], cwd=str(elsewhere))
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    checkpoint = osp.join(work_dir, 'iter_2.pth')
    assert osp.isfile(checkpoint)

    test = run_tool([_mmdet_tool('test.py'), config, checkpoint, '--work-dir',
                     str(tmp_path / 'test'), '--cfg-options', *options], cwd=str(elsewhere))
    assert test.returncode == 0, test.stdout[-3000:] + test.stderr[-3000:]
    assert 'coco/bbox_mAP' in test.stdout + test.stderr


def test_project_train_tool_on_a_user_config_inheriting_a_demo_config(tiny_shapes_root,
                                                                      teacher_ckpt, tmp_path):
    # Two levels below the file that names the teacher (_base_/models/distiller_r18_deit_tiny.py).
    user_dir = tmp_path / 'my_project'
    user_dir.mkdir()
    config = user_dir / 'my_dfkd.py'
    config.write_text(
        f'_base_ = {osp.join(DEMO, "dfkd_images_deit_tiny_shapes.py")!r}\n'
        f'data = {tiny_shapes_root + "/"!r}\n'
        'loader = dict(batch_size=2, num_workers=0, persistent_workers=False)\n'
        'train_dataloader = dict(**loader, dataset=dict(\n'
        "    data_root=data, ann_file='annotations/instances_train.json',\n"
        "    data_prefix=dict(img='train/')))\n"
        'val_dataloader = dict(**loader, dataset=dict(data_root=data))\n'
        'test_dataloader = val_dataloader\n'
        "val_evaluator = dict(ann_file=data + 'annotations/instances_val.json')\n"
        'test_evaluator = val_evaluator\n'
        'train_cfg = dict(max_iters=2, val_interval=2)\n'
        'default_hooks = dict(logger=dict(interval=1))\n')
    work_dir = str(tmp_path / 'work')

    train = run_tool([osp.join(REPO_ROOT, 'tools', 'train.py'), str(config), '--work-dir',
                      work_dir, '--cfg-options', f'model.teachers.0.checkpoint={teacher_ckpt}'],
                     cwd=str(user_dir))
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    assert osp.isfile(osp.join(work_dir, 'iter_2.pth'))
