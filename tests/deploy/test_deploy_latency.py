"""benchmarks/deploy_latency.py: PyTorch and onnxruntime are timed on the same work, every
model at every size with the runs asked for, and the report's ratios come from the right
rows."""
import importlib.util
import os.path as osp

import numpy as np
import pytest
import torch

from mmdfkd.deploy import load_detector

from conftest import REPO_ROOT
from deploy_helpers import export_small_student

_spec = importlib.util.spec_from_file_location(
    'deploy_latency', osp.join(REPO_ROOT, 'benchmarks', 'deploy_latency.py'))
deploy_latency = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(deploy_latency)


def test_every_model_is_timed_at_every_size_after_its_warm_up():
    calls = []

    def runner(name):
        def at(size):
            return lambda: calls.append((name, size))
        return at

    table = deploy_latency.latency_table({'a': runner('a'), 'b': runner('b')},
                                         [(128, 128), (800, 1333)], runs=3, warmup=2)
    assert set(table) == {'a', 'b'}
    assert all(set(row) == {'128x128', '800x1333'} for row in table.values())
    assert all(ms >= 0 for row in table.values() for ms in row.values())
    for name in 'ab':
        for size in ((128, 128), (800, 1333)):
            assert calls.count((name, size)) == 5  # 2 warm-up + 3 timed


def test_the_report_gives_each_latency_and_the_ratios():
    latency = {deploy_latency.STUDENT: {'128x128': 30.0, '800x1333': 4000.0},
               deploy_latency.STUDENT_ONNX: {'128x128': 15.0, '800x1333': 3000.0},
               deploy_latency.TEACHER: {'128x128': 40.0, '800x1333': 5000.0}}
    report = deploy_latency.markdown(dict(date='2026-01-01', machine='2 CPU cores', runs=5,
                                          warmup=1, latency_ms=latency))
    rows = {line.split('|')[1].strip(): [c.strip() for c in line.split('|')[2:-1]]
            for line in report.splitlines() if line.startswith('| ')}
    assert rows['model'] == ['128x128 ms', '800x1333 ms']
    assert rows['student, onnxruntime'] == ['15.0', '3000.0']
    assert rows['student: onnxruntime / PyTorch'] == ['0.50x', '0.75x']
    assert rows['student / teacher, PyTorch'] == ['0.75x', '0.80x']
    assert rows['student onnxruntime / teacher PyTorch'] == ['0.38x', '0.60x']
    assert 'median of 5 runs after 1 warm-up' in report


def test_the_timed_image_is_the_demo_image_resized_to_the_size(tiny_shapes_root):
    path = osp.join(tiny_shapes_root, 'val', '000001.png')
    image = deploy_latency.resized_image(path, (800, 1333))
    assert image.shape == (1, 3, 800, 1333) and image.dtype == np.float32
    assert 0 <= image.min() and image.max() <= 255 and image.std() > 0
    with pytest.raises(FileNotFoundError, match='does not exist'):
        deploy_latency.resized_image(path + '.missing', (128, 128))


def test_pytorch_and_onnxruntime_are_timed_on_the_same_work(tiny_shapes_root, tmp_path):
    config, checkpoint, onnx_file = export_small_student(str(tmp_path), tiny_shapes_root)
    model, _ = load_detector(config, checkpoint)
    image = osp.join(tiny_shapes_root, 'val', '000001.png')
    size = (96, 160)
    torch_call = deploy_latency.pytorch_runner(
        deploy_latency.OnnxDetector(model).eval(), image)(size)
    onnx_call = deploy_latency.onnxruntime_runner(onnx_file, image, threads=1)(size)
    with torch.no_grad():
        expected = torch_call()[:3]
    got = onnx_call()
    assert len(got[0]) == len(expected[0]) > 0
    for found, reference in zip(got, expected):
        np.testing.assert_allclose(found, reference.numpy(), atol=1e-3)
