# Data-free distillation from stored dead-leaves images refined by a short inversion, in
# mosaics: the recipe of ./dfkd_images_mosaic_deit_tiny_shapes.py (half the views 4-image
# mosaics, the teacher run online on every view, its detections the student's targets) on the
# bank of ./dfkd_leaves_refined_deit_tiny_shapes.py (256 dead-leaves images, each refined by 40
# full-resolution inversion steps; `synthesis_config` names it for benchmarks/quality.py, which
# makes the bank).
_base_ = [
    './_base_/models/distiller_r18_deit_tiny.py',
    './_base_/datasets/synthetic_images_mosaic.py',
    './_base_/schedules/kd_student_800it.py',
]

synthesis_config = 'dfkd_leaves_refined_deit_tiny_shapes.py'
bank_root = 'work_dirs/demo/leaves_refined_bank/'
train_dataloader = dict(dataset=dict(data_root=bank_root))
