# Data-free distillation from stored images inverted under stronger augmentations (zoom and
# colour shift; ./dfkd_augmented_deit_tiny_shapes.py makes the bank), in the recipe of
# ./dfkd_images_mosaic_deit_tiny_shapes.py (half the views 4-image mosaics, the teacher run
# online on every view, its detections the student's targets).
_base_ = [
    './_base_/models/distiller_r18_deit_tiny.py',
    './_base_/datasets/synthetic_images_mosaic.py',
    './_base_/schedules/kd_student_800it.py',
]

synthesis_config = 'dfkd_augmented_deit_tiny_shapes.py'
bank_root = 'work_dirs/demo/augmented_bank/'
train_dataloader = dict(dataset=dict(data_root=bank_root))
