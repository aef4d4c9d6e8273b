"""RetinaNet student: DeiT-Small (windowed attention, ViTDet) with a simple feature pyramid.

As ``retinanet_deit_tiny_sfp_coco.py`` with the DeiT-Small backbone (384 channels).
"""
_base_ = './retinanet_deit_tiny_sfp_coco.py'

model = dict(
    backbone=dict(model_name='deit_small_patch16_224'),
    neck=dict(in_channels=384))
