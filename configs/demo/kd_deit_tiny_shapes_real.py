# Real-data knowledge distillation baseline: the demo ViT student learns from the demo
# teacher on the real demo images, with its own ground-truth loss plus
# - PKD on every FPN level (levels matched by stride; 1x1 adapters where channels differ),
# - soft-label KD on the classification scores and box regression (the heads share anchors),
# - the teacher's confident detections as extra targets (PseudoBoxLoss).
# Run `make demo` (or tools/train.py configs/demo/retinanet_r18_shapes.py) first: the teacher
# checkpoint below must exist.
_base_ = './retinanet_deit_tiny_shapes.py'

teacher_checkpoint = 'work_dirs/demo/teacher/iter_1500.pth'
student = {{_base_.model}}
model = dict(
    _delete_=True,
    type='DetectionDistiller',
    student=student,
    teachers=[dict(config='./retinanet_r18_shapes.py', checkpoint=teacher_checkpoint)],
    distill_losses=[
        dict(type='PKDLoss', student='neck', teacher='neck', loss_weight=2.0),
        dict(type='ClassificationKDLoss', student='bbox_head', teacher='bbox_head',
             mode='sigmoid', temperature=1.0, loss_weight=1.0),
        dict(type='BoxRegressionKDLoss', student='bbox_head', teacher='bbox_head',
             loss_weight=1.0),
        dict(type='PseudoBoxLoss', score_thr=0.5, keep_gt=True, loss_weight=1.0),
    ],
    gt_loss_weight=0.0)  # ground truth is kept inside PseudoBoxLoss (keep_gt=True)
