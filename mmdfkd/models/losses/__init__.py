"""Distillation losses registered in ``mmdet.registry.MODELS``.

Every loss has a class attribute ``input_kind`` telling the distiller what it consumes:
``'feature'`` (matched (N, C, H, W) maps, called once per level), ``'dense_cls'`` (matched
(M, K) logits), ``'dense_box'`` (matched (M, 4) decoded boxes) or ``'detections'`` (the
teachers' detections, turned into targets of the student's own loss). The distiller binds the
loss to the models through the term class registered under that kind in
:data:`mmdfkd.registry.DISTILL_TERMS` (:mod:`mmdfkd.models.distillers.terms`).
"""
from .box_regression_kd_loss import BoxRegressionKDLoss
from .channel_wise_distill_loss import ChannelWiseDistillLoss
from .classification_kd_loss import ClassificationKDLoss
from .feature_mse_loss import FeatureMSELoss
from .pkd_loss import PKDLoss
from .pseudo_box_loss import PseudoBoxLoss

__all__ = ['FeatureMSELoss', 'ChannelWiseDistillLoss', 'PKDLoss', 'ClassificationKDLoss',
           'BoxRegressionKDLoss', 'PseudoBoxLoss']
