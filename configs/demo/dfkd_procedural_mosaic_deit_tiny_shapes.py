# Data-free distillation from stored procedural images in mosaics, none of them inverted: the
# recipe of ./dfkd_images_mosaic_deit_tiny_shapes.py (half the views 4-image mosaics, the
# teacher run online on every view, its detections the student's targets) on the bank of
# ./dfkd_images_procedural_deit_tiny_shapes.py (1024 dead-leaves images, made without a
# teacher pass). The images do not depend on the teacher, so the same bank serves every
# teacher (./dfkd_rednet26_procedural_mosaic_deit_tiny_shapes.py).
_base_ = [
    './_base_/models/distiller_r18_deit_tiny.py',
    './_base_/datasets/synthetic_images_mosaic.py',
    './_base_/schedules/kd_student_800it.py',
]

synthesis_config = 'dfkd_procedural_deit_tiny_shapes.py'
bank_root = 'work_dirs/demo/procedural_bank/'
train_dataloader = dict(dataset=dict(data_root=bank_root))
