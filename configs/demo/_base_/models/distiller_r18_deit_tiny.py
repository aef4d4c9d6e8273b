# The demo's distiller: the ViT student (./retinanet_deit_tiny_shapes.py) learns from the frozen
# demo teacher (./retinanet_r18_shapes.py, trained by configs/demo/retinanet_r18_shapes.py:
# `make demo` trains it first), through
# - PKD on every FPN level (levels matched by stride; 1x1 adapters where channels differ),
# - soft-label KD on the classification scores and box regression (the heads share anchors),
# - the teacher's confident detections as targets (PseudoBoxLoss), without ground truth: the
#   data-free configs have none (their sampled target boxes only steer the synthesis, and the
#   teacher's view of the image is what the student is taught). A config with real labels
#   lists the terms again with `keep_gt=True` (../../kd_deit_tiny_shapes_real.py).
# The student's RetinaNet head has the teacher's shapes (128 channels, 2 stacked convs, same
# anchors), so it starts from the teacher's head weights (`inherit`, FGD's inheriting strategy;
# the GroupNorm layers take the teacher's BN affine); ../schedules/kd_student_800it.py gives it
# a tenth of the learning rate.
#
# Another teacher checkpoint: edit `teacher_checkpoint` here, or set the key it was copied into,
# `--cfg-options model.teachers.0.checkpoint=PATH`. In a config that inherits this one,
# assigning `teacher_checkpoint` changes nothing: mmengine puts a variable's value into the keys
# that use it when it parses the file that uses it, here. Set the key there instead,
# `model = dict(teachers=[dict(config=..., checkpoint=PATH)])`; tools/train.py and tools/test.py
# stop with that advice when a config assigns it in vain, or --cfg-options sets it.
# `{{fileDirname}}` is this file's folder (mmengine substitutes it), so the teacher's model
# config is found from any working directory, by this project's tools and mmdet's own.
_base_ = './retinanet_deit_tiny_shapes.py'

teacher_checkpoint = 'work_dirs/demo/teacher/iter_1500.pth'
student = {{_base_.model}}
model = dict(
    _delete_=True,
    type='DetectionDistiller',
    student=student,
    teachers=[dict(config='{{fileDirname}}/retinanet_r18_shapes.py',
                   checkpoint=teacher_checkpoint)],
    distill_losses=[
        dict(type='PKDLoss', student='neck', teacher='neck', loss_weight=2.0),
        dict(type='ClassificationKDLoss', student='bbox_head', teacher='bbox_head',
             mode='sigmoid', temperature=1.0, loss_weight=1.0),
        dict(type='BoxRegressionKDLoss', student='bbox_head', teacher='bbox_head',
             loss_weight=1.0),
        dict(type='PseudoBoxLoss', score_thr=0.5, keep_gt=False, loss_weight=1.0),
    ],
    inherit=['bbox_head'],
    gt_loss_weight=0.0)
