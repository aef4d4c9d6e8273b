"""ONNX export of a ViT student (mmdfkd.deploy.onnx_export, tools/export_onnx.py,
tools/test_onnx.py): onnxruntime gives PyTorch's raw head outputs at the export size and at
other sizes, mmdet's detections on real images, and the same COCO mAP.

The student is the demo's (SPT, LSA, simple feature pyramid, RetinaNet head) with 2 blocks,
randomly initialised, with its classification weights spread out so that it detects something
above the demo's score threshold (see deploy_helpers.CLS_WEIGHT_STD).
"""
import os
import os.path as osp
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmdet.apis import inference_detector
from mmengine.config import ConfigDict
from torch import nn

import export_onnx as export_onnx_tool
import test_onnx
from mmdfkd.deploy import (OnnxDetector, OnnxDetectorRunner, coco_metrics, export_onnx,
                           load_detector, pipeline_resize)
from mmdfkd.deploy.onnx_export import compare_with_onnxruntime
from mmdfkd.utils import load_config

from conftest import REPO_ROOT, run_tool
from deploy_helpers import STUDENT_CONFIG, write_small_student

# onnxruntime against PyTorch, float32 on the CPU: raw outputs (logits, box deltas of order
# 1-10) differ by about 3e-6, boxes (pixels) by about 2e-5.
RAW_ATOL = 1e-4
BOX_ATOL = 1e-3
SCORE_ATOL = 1e-5
DISTILLER_CONFIG = osp.join(REPO_ROOT, 'configs', 'demo', 'dfkd_images_mosaic_deit_tiny_shapes.py')


@pytest.fixture(scope='module')
def student(tiny_shapes_root, tmp_path_factory):
    out = tmp_path_factory.mktemp('student')
    config, checkpoint = write_small_student(str(out), tiny_shapes_root)
    model, cfg = load_detector(config, checkpoint)
    model.cfg = cfg  # for mmdet's inference_detector
    onnx_file = str(out / 'student.onnx')
    wrapper = export_onnx(model, cfg, onnx_file, dynamic=True)
    return SimpleNamespace(config=config, checkpoint=checkpoint, model=model, cfg=cfg,
                           wrapper=wrapper, onnx_file=onnx_file,
                           ann_file=osp.join(tiny_shapes_root, 'annotations',
                                             'instances_val.json'),
                           img_dir=osp.join(tiny_shapes_root, 'val'))


@pytest.mark.parametrize('size', [(128, 128), (96, 160), (224, 64), (100, 130)])
def test_raw_outputs_and_detections_match_pytorch_at_any_size(student, size):
    # 128x128 is the export size (and the ViT's img_size); the others need the position
    # embedding resampled in the graph, 100x130 also the padding to multiples of 32.
    result = compare_with_onnxruntime(student.wrapper, student.onnx_file, size)
    assert result['raw_max_abs_diff'] < RAW_ATOL
    assert result['detections_onnx'] == result['detections_torch'] > 0
    assert result['box_max_abs_diff'] < BOX_ATOL


def _val_images(student, tmp_path, count=4):
    """Some val images, and one of them resized to 200x150 (the test pipeline shrinks it to
    128x96 by a factor 0.64: another input size, boxes mapped back)."""
    names = sorted(os.listdir(student.img_dir))[:count]
    paths = [osp.join(student.img_dir, name) for name in names]
    wide = str(tmp_path / 'wide.png')
    cv2.imwrite(wide, cv2.resize(cv2.imread(paths[0]), (200, 150)))
    return paths + [wide]


def test_detections_match_mmdet_predict(student, tmp_path):
    runner = OnnxDetectorRunner(student.onnx_file, num_threads=1)
    total = 0
    for path in _val_images(student, tmp_path):
        expected = inference_detector(student.model, path).pred_instances
        got = runner.detect_file(path)
        assert len(got.boxes) == len(expected.bboxes), path
        np.testing.assert_array_equal(got.labels, expected.labels.numpy())
        np.testing.assert_allclose(got.scores, expected.scores.numpy(), atol=SCORE_ATOL)
        np.testing.assert_allclose(got.boxes, expected.bboxes.numpy(), atol=BOX_ATOL)
        total += len(got.boxes)
    assert total > 0
    assert got.boxes[:, 2].max() > 128  # the 200-wide image: boxes in its own pixels


def test_coco_map_matches_pytorch_to_three_decimals(student, tmp_path, capsys):
    # tools/test_onnx.py: the ONNX model scored with pycocotools, the PyTorch one with mmdet's
    # Runner.test and CocoMetric; it fails if their bbox mAP differs at the third decimal.
    test_onnx.main([student.onnx_file, '--ann-file', student.ann_file, '--img-dir',
                    student.img_dir, '--threads', '1', '--pytorch', student.config,
                    student.checkpoint, '--work-dir', str(tmp_path / 'work')])
    table = capsys.readouterr().out.split('| model |')[-1]
    onnx_row = next(line for line in table.splitlines() if line.startswith('| onnxruntime'))
    torch_row = next(line for line in table.splitlines() if line.startswith('| PyTorch'))
    assert onnx_row.split('|')[2:] == torch_row.split('|')[2:]  # all six metrics
    # Unrounded, the two agree exactly: the same detections, scored the same way.
    runner = OnnxDetectorRunner(student.onnx_file, 1)
    onnx = coco_metrics(runner.detect_file, student.ann_file, student.img_dir, runner.classes)

    def pytorch_detect(path):
        pred = inference_detector(student.model, path).pred_instances
        return SimpleNamespace(boxes=pred.bboxes.numpy(), scores=pred.scores.numpy(),
                               labels=pred.labels.numpy())

    pytorch = coco_metrics(pytorch_detect, student.ann_file, student.img_dir, runner.classes)
    assert onnx == pytest.approx(pytorch, abs=1e-9)
    assert onnx['bbox_mAP_50'] > 0  # some detections hit objects: the comparison means something


def test_the_tool_exports_a_distillation_checkpoint_and_checks_it(student, tmp_path):
    # A distillation config with a checkpoint of its training run: the student is exported.
    cfg = load_config(student.config)
    cfg.model = ConfigDict(type='DetectionDistiller', student=cfg.model, teachers=[])
    config = str(tmp_path / 'distiller.py')
    cfg.dump(config)
    weights = torch.load(student.checkpoint, weights_only=True)['state_dict']
    checkpoint = str(tmp_path / 'iter_4.pth')
    torch.save(dict(state_dict={f'student.{k}': v for k, v in weights.items()}), checkpoint)
    out = str(tmp_path / 'from_distiller.onnx')

    done = run_tool(['tools/export_onnx.py', config, checkpoint, '--out', out, '--dynamic'])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    checks = [line for line in done.stdout.splitlines() if 'max abs diff' in line]
    assert [line.split(' at ')[1].split(':')[0] for line in checks] == ['128x128', '224x96']
    # Same weights, same graph: the same outputs as the student exported directly.
    runner, direct = OnnxDetectorRunner(out, 1), OnnxDetectorRunner(student.onnx_file, 1)
    image = cv2.imread(_val_images(student, tmp_path, 1)[0])
    for got, expected in zip(runner(image), direct(image)):
        np.testing.assert_array_equal(got, expected)


def test_a_dynamic_export_of_windowed_attention_is_refused(tiny_shapes_root, tmp_path, capsys):
    # 4x4-token windows: the window count and padding are Python values of the traced size,
    # so the graph runs at sizes with the same window layout only. The tool checks a second
    # size and refuses the file; a fixed-size export is exact.
    config, checkpoint = write_small_student(str(tmp_path), tiny_shapes_root, window_size=4,
                                             global_attn_indices=(1, ))
    out = str(tmp_path / 'windowed.onnx')
    with pytest.raises(SystemExit, match='export at the size it will run at, without --dynamic'):
        export_onnx_tool.main([config, checkpoint, '--out', out, '--dynamic'])
    assert 'onnxruntime failed at 224x96' in capsys.readouterr().out
    assert sorted(os.listdir(tmp_path)) == ['student.pth', 'student_config.py']  # no file
    export_onnx_tool.main([config, checkpoint, '--out', out])
    checked = capsys.readouterr().out
    assert osp.isfile(out)
    diff = float(checked.split('raw head outputs max abs diff ')[1].split(';')[0])
    assert diff < RAW_ATOL, checked


def test_the_hybrid_student_exports_at_any_size(tiny_shapes_root, tmp_path, capsys):
    """make demo's data-free student: the teacher's ResNet stem under the ViT."""
    stem = load_config(osp.join(REPO_ROOT, 'configs', 'demo', '_base_', 'models',
                                'conv_stem_r18.py')).conv_stem_student.backbone.conv_stem
    config, checkpoint = write_small_student(str(tmp_path), tiny_shapes_root, spt=False,
                                             conv_stem=stem.to_dict())
    out = str(tmp_path / 'hybrid.onnx')
    export_onnx_tool.main([config, checkpoint, '--out', out, '--dynamic'])
    checked = capsys.readouterr().out
    assert osp.isfile(out)
    diffs = [float(part.split(';')[0])
             for part in checked.split('raw head outputs max abs diff ')[1:]]
    assert len(diffs) == 2 and max(diffs) < RAW_ATOL, checked  # 128x128 and 224x96


def test_a_distillation_checkpoint_without_a_student_is_refused(student, tmp_path):
    checkpoint = str(tmp_path / 'teacher_only.pth')
    torch.save(dict(state_dict={'teachers.0.x': torch.zeros(1)}), checkpoint)
    with pytest.raises(ValueError, match='no `student.\\*` weights'):
        load_detector(DISTILLER_CONFIG, checkpoint)


def test_a_fixed_size_graph_takes_its_size_only(student, tmp_path):
    out = str(tmp_path / 'fixed.onnx')
    export_onnx(student.model, student.cfg, out, input_size=(128, 128))
    fixed, dynamic = OnnxDetectorRunner(out, 1), OnnxDetectorRunner(student.onnx_file, 1)
    square, wide = _val_images(student, tmp_path, 1)
    for got, expected in zip(fixed.detect_file(square), dynamic.detect_file(square)):
        np.testing.assert_allclose(got, expected, atol=BOX_ATOL)
    with pytest.raises(ValueError, match='export with --dynamic'):
        fixed.detect_file(wide)  # resized to 128x96


def test_export_restores_timm_and_torch(student, tmp_path):
    # The export adapted timm's grid computation and registered an ONNX symbolic for
    # antialiased bicubic interpolation; neither outlives it.
    embed = student.model.backbone.vit.patch_embed
    assert 'dynamic_feat_size' not in vars(embed)
    assert embed.dynamic_feat_size((100, 130)) == (13, 17)

    class Resample(nn.Module):
        def forward(self, x):
            return F.interpolate(x, size=(5, 7), mode='bicubic', antialias=True)

    with pytest.raises(torch.onnx.errors.UnsupportedOperatorError):
        torch.onnx.export(Resample(), (torch.zeros(1, 1, 4, 4),), str(tmp_path / 'r.onnx'),
                          dynamo=False, opset_version=18)


def test_invalid_exports_are_refused_with_what_to_change(student, tmp_path):
    out = str(tmp_path / 'bad.onnx')
    with pytest.raises(ValueError, match='opset 18 or later'):
        export_onnx(student.model, student.cfg, out, opset=17)
    cfg = load_config(STUDENT_CONFIG)
    cfg.test_dataloader.dataset.pipeline.insert(2, dict(type='RandomFlip', prob=1.0))
    with pytest.raises(ValueError, match="'RandomFlip'.*not repeated by the ONNX runner"):
        pipeline_resize(cfg)
    with pytest.raises(TypeError, match='must be a SingleStageDetector'):
        OnnxDetector(nn.Linear(1, 1))
    soft = ConfigDict(student.model.bbox_head.test_cfg)
    soft.nms = dict(type='soft_nms', iou_threshold=0.5)
    with pytest.raises(ValueError, match='plain NMS'):
        OnnxDetector(student.model, soft)
