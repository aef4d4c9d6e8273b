"""Two teachers of different inductive biases (the demo's CNN and involution teachers) teach one
ViT student: synthesis inverts both, a stored bank holds both teachers' outputs so training from
it runs neither, and the stored images train the student with both teachers online, through
tools/generate_synthetic.py and tools/train.py."""
import os.path as osp

import torch
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.dataset import pseudo_collate
from mmengine.runner import save_checkpoint

from conftest import REPO_ROOT, run_tool, save_random_teacher_checkpoint, shrink_config
from demo.shapes_coco import SHAPES_CLASSES
from mmdfkd.datasets import SyntheticBankDataset
from mmdfkd.utils import load_config

DEMO = osp.join(REPO_ROOT, 'configs', 'demo')
SYNTHESIS = osp.join(DEMO, 'dfkd_ensemble_deit_tiny_shapes.py')
BANK = osp.join(DEMO, 'dfkd_ensemble_bank_deit_tiny_shapes.py')
IMAGES = osp.join(DEMO, 'dfkd_ensemble_images_mosaic_deit_tiny_shapes.py')
REDNET = osp.join(DEMO, 'retinanet_rednet26_shapes.py')


def _with_teachers(cfg, checkpoints):
    for teacher, checkpoint in zip(cfg.model.teachers, checkpoints):
        teacher.checkpoint = checkpoint
    return cfg


def _train_from(cfg, bank: str, work_dir: str) -> str:
    """Trains ``cfg`` on the images of ``bank`` through tools/train.py; returns its log."""
    cfg.train_dataloader.dataset.data_root = bank
    cfg.dump(work_dir + '.py')
    train = run_tool(['tools/train.py', work_dir + '.py', '--work-dir', work_dir])
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    return train.stdout + train.stderr


def save_random_rednet(path: str) -> str:
    """Saves the involution teacher as its training starts (``init_weights``: the last norm of
    every block at zero, so the blocks start as identities)."""
    torch.manual_seed(1)
    teacher = MODELS.build(load_config(REDNET).model)
    teacher.init_weights()
    save_checkpoint(dict(state_dict=teacher.state_dict()), path)
    return path


def test_both_teachers_are_inverted_stored_and_teach_from_the_bank(tiny_shapes_root, tmp_path):
    register_all_modules()
    cnn = save_random_teacher_checkpoint(str(tmp_path / 'cnn.pth'))
    rednet = save_random_rednet(str(tmp_path / 'rednet.pth'))
    checkpoints = [cnn, rednet]

    cfg = _with_teachers(shrink_config(load_config(SYNTHESIS), tiny_shapes_root), checkpoints)
    assert [t.weight for t in cfg.model.teachers] == [0.5, 0.5]
    cfg.custom_hooks[0].synthesizer.update(total_steps=3, lowres_steps=1, fp_sampling=None)
    cfg.dump(str(tmp_path / 'synthesis.py'))
    out = str(tmp_path / 'bank')
    result = run_tool(['tools/generate_synthetic.py', str(tmp_path / 'synthesis.py'), '--num',
                       '2', '--out', out, '--store-outputs'])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert 'Teacher 1' in result.stdout + result.stderr  # the BN prior of the second teacher

    dataset = SyntheticBankDataset(data_root=out, metainfo=dict(classes=SHAPES_CLASSES))
    stored = dataset[0]['data_samples'].teacher_outputs
    assert set(stored) == {'teacher0', 'teacher1'}
    for name in stored:  # FPN levels at strides 8, 16, 32 with 128 channels, both teachers
        assert [m.shape[1] for m in stored[name]['sources']['neck']] == [128] * 3
    assert not torch.equal(stored['teacher0']['sources']['neck'][0].float(),
                           stored['teacher1']['sources']['neck'][0].float())

    # From the bank, neither teacher runs; both teachers' outputs give the loss.
    bank_cfg = _with_teachers(shrink_config(load_config(BANK), tiny_shapes_root, max_iters=2),
                              checkpoints)
    distiller = MODELS.build(bank_cfg.model).eval()
    calls = []
    for teacher in distiller.teachers:
        teacher.backbone.register_forward_hook(lambda *a: calls.append(1))
    batch = distiller.data_preprocessor(pseudo_collate([dataset[0], dataset[1]]), False)
    with torch.no_grad():
        both = distiller.loss(batch['inputs'], batch['data_samples'])
        assert calls == []
        # The second teacher's stored outputs count: with the first teacher's in their place,
        # the dense terms change.
        for sample in batch['data_samples']:
            sample.teacher_outputs['teacher1'] = sample.teacher_outputs['teacher0']
        first_twice = distiller.loss(batch['inputs'], batch['data_samples'])
    assert calls == []
    for key in ('loss_PKDLoss_neck', 'loss_ClassificationKDLoss_bbox_head'):
        assert torch.isfinite(both[key]) and both[key].item() != first_twice[key].item()

    assert 'loss_PKDLoss_neck' in _train_from(bank_cfg, out, str(tmp_path / 'bank_run'))
    # The stored images, in mosaics, with both teachers run online on every view.
    images_cfg = _with_teachers(shrink_config(load_config(IMAGES), tiny_shapes_root,
                                              max_iters=2), checkpoints)
    assert 'loss_PseudoBoxLoss_cls' in _train_from(images_cfg, out, str(tmp_path / 'images'))
