"""The ONNX runner (mmdfkd/deploy/onnx_runtime.py): it resizes images as mmdet's test pipeline
does, and it runs without torch, mmdet, mmcv or mmengine."""
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import onnx
import pytest
from mmdet.datasets.transforms import Resize

from mmdfkd.deploy import OnnxDetectorRunner, resize_image

from conftest import REPO_ROOT
from deploy_helpers import export_small_student

RUNTIME = osp.join(REPO_ROOT, 'mmdfkd', 'deploy', 'onnx_runtime.py')


@pytest.fixture(scope='module')
def onnx_file(tiny_shapes_root, tmp_path_factory):
    return export_small_student(str(tmp_path_factory.mktemp('student')), tiny_shapes_root)[2]


@pytest.mark.parametrize('keep_ratio', [True, False])
@pytest.mark.parametrize('height, width, scale', [
    (128, 128, (128, 128)), (150, 200, (128, 128)), (480, 640, (1333, 800)),
    (427, 640, (1333, 800)), (1000, 333, (1333, 800)), (77, 91, (128, 128))])
def test_resize_is_mmdets_test_resize(height, width, scale, keep_ratio):
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    expected = Resize(scale=scale, keep_ratio=keep_ratio)(dict(img=image.copy()))
    resized, scale_factor = resize_image(image, dict(scale=list(scale), keep_ratio=keep_ratio))
    np.testing.assert_array_equal(resized, expected['img'])
    np.testing.assert_allclose(scale_factor, expected['scale_factor'], rtol=1e-6)


def test_the_runner_needs_neither_torch_nor_mmdet(onnx_file, tiny_shapes_root, tmp_path):
    val = osp.join(tiny_shapes_root, 'val')
    image = osp.join(val, sorted(os.listdir(val))[0])
    expected = OnnxDetectorRunner(onnx_file, 1).detect_file(image)
    # The module loaded from its file alone, with torch and OpenMMLab's packages unimportable.
    script = (
        'import importlib.util, sys\n'
        'for name in ("torch", "torchvision", "mmdet", "mmcv", "mmengine", "mmdfkd", "timm"):\n'
        '    sys.modules[name] = None\n'
        f'spec = importlib.util.spec_from_file_location("onnx_runtime", {RUNTIME!r})\n'
        'module = importlib.util.module_from_spec(spec)\n'
        'spec.loader.exec_module(module)\n'
        f'found = module.OnnxDetectorRunner({onnx_file!r}, 1).detect_file({image!r})\n'
        'import numpy\n'
        f'numpy.savez({str(tmp_path / "found.npz")!r}, **found._asdict())\n')
    done = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    found = np.load(tmp_path / 'found.npz')
    assert len(found['boxes']) == len(expected.boxes) > 0
    for name, value in expected._asdict().items():
        np.testing.assert_array_equal(found[name], value)


def test_a_file_without_the_export_metadata_is_refused(onnx_file, tmp_path):
    bare = onnx.load(onnx_file)
    del bare.metadata_props[:]
    bare_file = str(tmp_path / 'bare.onnx')
    onnx.save(bare, bare_file)
    with pytest.raises(ValueError, match='export the model with tools/export_onnx.py'):
        OnnxDetectorRunner(bare_file)


def test_an_image_that_is_not_bgr_is_refused(onnx_file):
    with pytest.raises(ValueError, match=r'expected an \(H, W, 3\) BGR image'):
        OnnxDetectorRunner(onnx_file, 1)(np.zeros((128, 128), dtype=np.uint8))
