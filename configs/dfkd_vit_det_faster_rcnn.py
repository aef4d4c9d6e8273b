# Data-free distillation on COCO from a two-stage teacher: mmdet's Faster R-CNN R50-FPN 1x
# (37.4 box AP) teaches the DeiT-Tiny RetinaNet student of configs/dfkd_vit_det.py. Synthesis,
# data and schedule are those of configs/dfkd_vit_det.py: the images are inverted through the
# teacher's own RPN and RoI losses, and its backbone BN is frozen ImageNet BN as in RetinaNet
# (frozen_bn_prior=True).
#
#   python tools/train.py configs/dfkd_vit_det_faster_rcnn.py
#
# Files: the teacher checkpoint from mmdet's model zoo,
#   https://download.openmmlab.com/mmdetection/v2.0/faster_rcnn/faster_rcnn_r50_fpn_1x_coco/faster_rcnn_r50_fpn_1x_coco_20200130-047c8118.pth
# saved at `teacher_checkpoint` below (or --cfg-options model.teachers.0.checkpoint=PATH), and
# COCO val2017 as for configs/dfkd_vit_det.py.
#
# Terms: the heads differ (a class-agnostic RPN and RoI classifier against the student's
# 80-class RetinaNet head), so no dense head term applies. The student learns from the teacher's
# FPN features (PKD on the strides both pyramids have, 8 to 64) and its detections
# (PseudoBoxLoss).
_base_ = './dfkd_vit_det.py'

teacher_checkpoint = 'checkpoints/faster_rcnn_r50_fpn_1x_coco_20200130-047c8118.pth'
teacher_checkpoint_url = (
    'https://download.openmmlab.com/mmdetection/v2.0/faster_rcnn/faster_rcnn_r50_fpn_1x_coco/'
    'faster_rcnn_r50_fpn_1x_coco_20200130-047c8118.pth')

model = dict(
    teachers=[
        dict(config='mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
             checkpoint=teacher_checkpoint,
             checkpoint_url=teacher_checkpoint_url)
    ],
    distill_losses=[
        dict(type='PKDLoss', student='neck', teacher='neck', loss_weight=2.0),
        dict(type='PseudoBoxLoss', score_thr=0.5, keep_gt=True, loss_weight=1.0),
    ])
