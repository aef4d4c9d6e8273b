# Data-free distillation on COCO, as configs/dfkd_vit_det.py (same RetinaNet-R50-FPN teacher,
# synthesis, terms, data and schedule) with the hybrid student of the demo: the DeiT-Tiny
# student's 16 px tokens are cut from the map of the teacher's own stem and first stage
# (ResNet-50: conv 7x7, max pool, three bottlenecks; stride 4, 256 channels), inherited from
# the teacher's checkpoint and frozen with its BN statistics. mmdet trains this teacher with
# that stem frozen (frozen_stages=1) from ImageNet weights, so the student's first filters are
# ImageNet's, and nothing is downloaded. On the demo the hybrid student (R18 stem) kept 0.80 of
# real-image KD against 0.60 for the pure ViT (README, Quality); no COCO AP has been measured.
# On the demo a stem of this form trained from scratch taught as well (and with the frozen-BN
# teacher slightly better: 0.151 against 0.143); to train it, drop the stem's `inherit` entry
# and set frozen_stages=-1, norm_cfg requires_grad=True, norm_eval=False.
# At 800x1333 the student has 9.3 M parameters and 244.6 GFLOPs (the pure DeiT-Tiny student
# 8.5 M and 205.5, the teacher 38.0 M and 501.0).
#
#   python tools/train.py configs/dfkd_vit_det_convstem.py
#
# Files: the same teacher checkpoint and COCO val2017 as configs/dfkd_vit_det.py; the keys to
# change are the same (model.teachers.0.checkpoint, {val,test}_dataloader.dataset.data_root,
# {val,test}_evaluator.ann_file).
_base_ = './dfkd_vit_det.py'

model = dict(
    student=dict(
        backbone=dict(
            conv_stem=dict(
                type='ResNet',
                depth=50,
                num_stages=1,
                strides=(1, ),
                dilations=(1, ),
                out_indices=(0, ),
                frozen_stages=1,
                norm_cfg=dict(type='BN', requires_grad=False),
                norm_eval=True,
                style='pytorch',
                init_cfg=None))),
    inherit=[dict(student='backbone.vit.patch_embed.stem', teacher='backbone')])
