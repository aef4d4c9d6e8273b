"""A small ViT student detector saved as ``tools/export_student.py`` saves one, and exported
to ONNX, for the deployment tests."""
import os.path as osp
from typing import Any, Tuple

import torch
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from torch import nn

from mmdfkd.utils import load_config

from conftest import REPO_ROOT, shrink_config

STUDENT_CONFIG = osp.join(REPO_ROOT, 'configs', 'demo', 'retinanet_deit_tiny_shapes.py')
# The standard deviation given to the classification layer's weights. mmdet initialises them
# with 0.01 and the bias at the focal-loss prior, so every score of an untrained model is
# about 0.01, below the demo's score_thr of 0.05, and nothing would be detected. Spread out,
# some (anchor, class) pairs of each image pass the threshold, with distinct scores.
CLS_WEIGHT_STD = 0.05


def write_small_student(out_dir: str, data_root: str, seed: int = 0,
                        **backbone: Any) -> Tuple[str, str]:
    """Writes the demo ViT student (2 blocks instead of 6, randomly initialised, test
    settings of the demo) as ``student_config.py`` and ``student.pth`` in ``out_dir``, with
    its test split on ``data_root``. ``backbone`` overrides TimmViT's arguments.

    Returns:
        The config and checkpoint paths.
    """
    cfg = shrink_config(load_config(STUDENT_CONFIG), data_root)
    cfg.model.backbone.timm_kwargs.depth = 2
    cfg.model.backbone.update(backbone)
    register_all_modules()
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    nn.init.normal_(model.bbox_head.retina_cls.weight, std=CLS_WEIGHT_STD)
    config, checkpoint = osp.join(out_dir, 'student_config.py'), osp.join(out_dir, 'student.pth')
    cfg.dump(config)
    torch.save(dict(state_dict=model.state_dict()), checkpoint)
    return config, checkpoint


def export_small_student(out_dir: str, data_root: str) -> Tuple[str, str, str]:
    """:func:`write_small_student`, exported with a dynamic input size to
    ``out_dir/student.onnx``.

    Returns:
        The config, checkpoint and ONNX file paths.
    """
    from mmdfkd.deploy import export_onnx, load_detector
    config, checkpoint = write_small_student(out_dir, data_root)
    model, cfg = load_detector(config, checkpoint)
    onnx_file = osp.join(out_dir, 'student.onnx')
    export_onnx(model, cfg, onnx_file, dynamic=True)
    return config, checkpoint, onnx_file
