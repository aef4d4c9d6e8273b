"""Distillation through the tools: tools/train.py trains a DetectionDistiller config on real
data (the real-data KD baseline), its checkpoints hold the student but no teacher, it resumes,
tools/test.py evaluates the student or the teacher, and tools/export_student.py gives a detector
that stock mmdet loads and runs."""
import glob
import json
import os.path as osp

import torch

from mmdfkd.utils import load_checkpoint_file

from conftest import REPO_ROOT, run_tool, save_random_teacher_checkpoint, shrink_config

KD_CONFIG = osp.join(REPO_ROOT, 'configs', 'demo', 'kd_deit_tiny_shapes_real.py')


def _write_kd_config(data_root: str, teacher_ckpt: str, path: str) -> str:
    from mmdfkd.utils import load_config
    cfg = shrink_config(load_config(KD_CONFIG), data_root)
    cfg.model.teachers[0].checkpoint = teacher_ckpt
    cfg.model.student.test_cfg.score_thr = 0.0
    cfg.dump(path)
    return path


def test_distill_train_resume_test_and_export(tiny_shapes_root, tmp_path):
    teacher_ckpt = save_random_teacher_checkpoint(str(tmp_path / 'teacher.pth'))
    config = _write_kd_config(tiny_shapes_root, teacher_ckpt, str(tmp_path / 'kd.py'))
    work_dir = str(tmp_path / 'work')

    first = run_tool(['tools/train.py', config, '--work-dir', work_dir])
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    ckpt = load_checkpoint_file(osp.join(work_dir, 'iter_4.pth'))
    keys = list(ckpt['state_dict'])
    assert any(k.startswith('student.backbone.') for k in keys)
    assert not any(k.startswith('teachers.') for k in keys)
    records = [json.loads(line) for path in glob.glob(osp.join(work_dir, '*', 'vis_data',
                                                               'scalars.json'))
               for line in open(path)]
    train = [r for r in records if 'loss' in r]
    assert len(train) == 4
    for key in ('loss_PKDLoss_neck', 'loss_ClassificationKDLoss_bbox_head',
                'loss_PseudoBoxLoss_cls'):
        assert all(key in r and r[key] == r[key] for r in train), key

    second = run_tool(['tools/train.py', config, '--work-dir', work_dir, '--resume',
                       '--cfg-options', 'train_cfg.max_iters=6'])
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert 'resumed epoch: 0, iter: 4' in second.stdout + second.stderr
    assert osp.isfile(osp.join(work_dir, 'iter_6.pth'))

    for who in ('student', 'teacher'):
        test = run_tool(['tools/test.py', config, osp.join(work_dir, 'iter_6.pth'),
                         '--work-dir', str(tmp_path / f'test_{who}'),
                         '--cfg-options', f'model.predict_with={who}'])
        assert test.returncode == 0, test.stdout[-3000:] + test.stderr[-3000:]
        assert 'coco/bbox_mAP' in test.stdout + test.stderr

    out_dir = str(tmp_path / 'export')
    export = run_tool(['tools/export_student.py', config, osp.join(work_dir, 'iter_6.pth'),
                       '--out', out_dir])
    assert export.returncode == 0, export.stderr[-3000:]
    image = sorted(glob.glob(osp.join(tiny_shapes_root, 'val', '*.png')))[0]
    script = tmp_path / 'infer.py'
    script.write_text(
        'import sys, torch\n'
        'state = torch.load(sys.argv[2], weights_only=True)  # before mmdfkd is imported\n'
        'from mmdet.apis import inference_detector, init_detector\n'
        'model = init_detector(sys.argv[1], sys.argv[2], device="cpu")\n'
        'result = inference_detector(model, sys.argv[3])\n'
        'labels = result.pred_instances.labels\n'
        'assert len(labels) > 0 and int(labels.max()) < 6, labels\n'
        'assert model.dataset_meta["classes"][0] == "rectangle"\n'
        'print("exported student ran", type(model).__name__, model.backbone.__class__.__name__)\n')
    infer = run_tool([str(script), osp.join(out_dir, 'student_config.py'),
                      osp.join(out_dir, 'student.pth'), image])
    assert infer.returncode == 0, infer.stdout[-3000:] + infer.stderr[-3000:]
    assert 'exported student ran RetinaNet TimmViT' in infer.stdout

    # The exported config also works with the project's own test tool.
    test = run_tool(['tools/test.py', osp.join(out_dir, 'student_config.py'),
                     osp.join(out_dir, 'student.pth'), '--work-dir', str(tmp_path / 'test_exp')])
    assert test.returncode == 0, test.stdout[-3000:] + test.stderr[-3000:]


def test_export_refuses_a_plain_detector_config(tmp_path):
    result = run_tool(['tools/export_student.py', osp.join(REPO_ROOT, 'configs', 'demo',
                                                            'retinanet_r18_shapes.py'),
                       str(tmp_path / 'x.pth'), '--out', str(tmp_path / 'out')])
    assert result.returncode != 0
    assert 'model has no `student`' in result.stderr
    assert not osp.exists(tmp_path / 'out')


def test_export_folds_lottery_ticket_masks_into_the_student(tmp_path, capsys):
    """A LotteryTicketHook checkpoint's masks become exact zeros of the exported weights, the
    summary gives the sparsity, and the export stays a plain state dict without the masks."""
    import pytest
    from export_student import export_student
    from mmengine.runner import save_checkpoint

    torch.manual_seed(0)
    qkv, fc1, bias = torch.randn(12, 4), torch.randn(8, 4), torch.randn(12)
    qkv_mask, fc1_mask = torch.rand(12, 4) > 0.75, torch.rand(8, 4) > 0.5
    # Weights at pruned positions are not zero here: export applies the masks, whatever the
    # checkpoint's weights hold.
    checkpoint = str(tmp_path / 'pruned.pth')
    save_checkpoint(dict(
        state_dict={'student.backbone.vit.blocks.0.attn.qkv.weight': qkv,
                    'student.backbone.vit.blocks.0.attn.qkv.bias': bias,
                    'student.backbone.vit.blocks.0.mlp.fc1.weight': fc1},
        meta=dict(iter=8),
        lottery_ticket=dict(module='student', rewind=None, init=None, masks={
            'student.backbone.vit.blocks.0.attn.qkv.weight': qkv_mask,
            'student.backbone.vit.blocks.0.mlp.fc1.weight': fc1_mask})), checkpoint)
    export_student(KD_CONFIG, checkpoint, str(tmp_path / 'out'))

    exported = torch.load(str(tmp_path / 'out' / 'student.pth'), weights_only=True)
    assert set(exported) == {'state_dict', 'meta'}
    state = exported['state_dict']
    for name, weight, mask in (('backbone.vit.blocks.0.attn.qkv.weight', qkv, qkv_mask),
                               ('backbone.vit.blocks.0.mlp.fc1.weight', fc1, fc1_mask)):
        assert torch.equal(state[name] == 0, ~mask)
        assert torch.equal(state[name][mask], weight[mask])
    assert torch.equal(state['backbone.vit.blocks.0.attn.qkv.bias'], bias)
    pruned = int((~qkv_mask).sum() + (~fc1_mask).sum())
    printed = capsys.readouterr().out
    assert (f'pruning masks folded in: {pruned / 80:.1%} of the 0.00M weights of 2 pruned '
            f'tensors are zero ({pruned / 92:.1%} of all student values)') in printed

    # Masks that do not fit the weights are refused.
    save_checkpoint(dict(state_dict={'student.backbone.vit.blocks.0.mlp.fc1.weight': fc1},
                         lottery_ticket=dict(masks={
                             'student.backbone.vit.blocks.0.mlp.fc1.weight': qkv_mask})),
                    checkpoint)
    with pytest.raises(ValueError, match=r"mask of shape \(12, 4\) for the student weight "
                                         r"'backbone.vit.blocks.0.mlp.fc1.weight', but one of "
                                         r'shape \(8, 4\)'):
        export_student(KD_CONFIG, checkpoint, str(tmp_path / 'out2'))
