# Data-free distillation on COCO, as configs/dfkd_vit_det.py (same RetinaNet-R50-FPN teacher,
# synthesis, terms, data and schedule) with the DeiT-Small student of
# configs/students/retinanet_deit_small_sfp_coco.py (24.9 M parameters against the tiny
# student's 8.5 M and the teacher's 38.0 M).
#
#   python tools/train.py configs/dfkd_vit_det_deit_small.py
#
# Files: the same teacher checkpoint and COCO val2017 as configs/dfkd_vit_det.py; the keys to
# change are the same (model.teachers.0.checkpoint, {val,test}_dataloader.dataset.data_root,
# {val,test}_evaluator.ann_file).
_base_ = './dfkd_vit_det.py'

# Must stay equal to the model of configs/students/retinanet_deit_small_sfp_coco.py (checked
# by the tests): a config cannot take the student from a second base file.
model = dict(
    student=dict(
        backbone=dict(model_name='deit_small_patch16_224'),
        neck=dict(in_channels=384)))
