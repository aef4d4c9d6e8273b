"""The PyTorch side of deployment: the detector a config and checkpoint describe, and its COCO
metrics through mmdet's own evaluation, the reference an exported model is checked against.

Both accept what ``tools/export_student.py`` writes (a plain detector config and its weights)
and a distillation config with a checkpoint of its training run, whose student is taken (the
teachers are not built, so their checkpoints are not needed), as ``tools/test.py`` does.
"""
import copy
import os.path as osp
from typing import Dict, Tuple

from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.config import Config, ConfigDict
from mmengine.runner import Runner
from torch import nn

from mmdfkd.utils import (checkpoint_weights, is_distiller_config, load_checkpoint_file,
                          load_config, student_model_config, student_weights,
                          weights_fit_problem)
from mmdfkd.utils.model_stats import strip_pretrained


def detector_config_and_weights(config: str, checkpoint: str) -> Tuple[Config, Dict]:
    """The config of a plain detector and its weights.

    Args:
        config: A detector config (e.g. ``student_config.py`` of ``tools/export_student.py``)
            or a distillation config (a ``DetectionDistiller`` model, whose student is taken).
        checkpoint: The detector's weights (``student.pth``), or a checkpoint written by
            training the distillation config.

    Returns:
        ``(cfg, weights)``: the config with ``cfg.model`` the detector's model config (the
        student's for a distillation config) and ``load_from`` unset, and name -> weight.

    Raises:
        FileNotFoundError: If the config file does not exist.
        CheckpointFileError: If the checkpoint cannot be loaded.
        ValueError: If a distillation checkpoint holds no ``student.*`` weights.
    """
    cfg = load_config(config)
    loaded = load_checkpoint_file(checkpoint)
    if is_distiller_config(cfg.model):
        cfg.model = student_model_config(cfg.model)
        weights = student_weights(loaded)
        if not weights:
            raise ValueError(
                f'{checkpoint} holds no `student.*` weights, but {config} is a distillation '
                'config: give the checkpoint written by training it (tools/train.py), or the '
                'exported student (tools/export_student.py) with its own student_config.py.')
    else:
        weights = checkpoint_weights(loaded)
    cfg.load_from, cfg.resume = None, False
    return cfg, weights


def load_detector(config: str, checkpoint: str) -> Tuple[nn.Module, Config]:
    """Builds the detector of a config with a checkpoint's weights, in eval mode on the CPU.

    Args:
        config: See :func:`detector_config_and_weights`.
        checkpoint: See :func:`detector_config_and_weights`.

    Returns:
        ``(model, cfg)``; ``cfg.model`` is the detector's model config.

    Raises:
        ValueError: If the weights do not fit the model (missing or of another shape), or see
            :func:`detector_config_and_weights`.
    """
    cfg, weights = detector_config_and_weights(config, checkpoint)
    register_all_modules()
    # Every weight comes from the checkpoint: nothing pretrained is read or downloaded.
    model = MODELS.build(ConfigDict(strip_pretrained(cfg.model.to_dict())))
    problem = weights_fit_problem(model, weights)
    if problem:
        raise ValueError(f'{checkpoint} does not fit the detector of {config}: {problem}. Give '
                         'the config the checkpoint was trained (or exported) with.')
    model.load_state_dict(weights, strict=False)  # every weight fits; extras are unused
    return model.eval(), cfg


def pytorch_coco_metrics(config: str, checkpoint: str, ann_file: str, img_dir: str,
                         work_dir: str) -> Dict[str, float]:
    """COCO bbox metrics of the PyTorch detector, by mmdet's ``Runner.test``.

    The config's test dataloader and evaluator (its pipeline, batch size and ``CocoMetric``)
    are kept, pointed at ``ann_file`` and ``img_dir``.

    Args:
        config: See :func:`detector_config_and_weights`.
        checkpoint: See :func:`detector_config_and_weights`.
        ann_file: COCO annotation file of the split.
        img_dir: Folder of the split's images (their ``file_name`` is relative to it).
        work_dir: Where the runner writes its logs.

    Returns:
        ``CocoMetric``'s results without the ``coco/`` prefix (``bbox_mAP``, ``bbox_mAP_50``,
        ..., rounded to 3 decimals by mmdet); empty if the model detected nothing.
    """
    model, cfg = load_detector(config, checkpoint)
    cfg = copy.deepcopy(cfg)
    cfg.work_dir = work_dir
    if not isinstance(cfg.get('test_evaluator'), dict):
        raise ValueError(f'{config}: test_evaluator must be one evaluator (a dict, e.g. '
                         f"mmdet's CocoMetric), got {cfg.get('test_evaluator')!r}")
    # Absolute paths: the dataset would join relative ones to its data_root.
    ann_file, img_dir = osp.abspath(ann_file), osp.abspath(img_dir)
    dataset = cfg.test_dataloader.dataset
    dataset.ann_file = ann_file
    dataset.data_prefix = dict(img=img_dir + '/')
    cfg.test_evaluator.ann_file = ann_file
    runner = Runner.from_cfg(cfg)
    runner.model.load_state_dict(model.state_dict())
    metrics = runner.test()
    return {key.split('/', 1)[-1]: value for key, value in metrics.items()}
