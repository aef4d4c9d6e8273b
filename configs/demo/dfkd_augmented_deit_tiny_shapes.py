# The demo's inversion of the CNN teacher (./dfkd_deit_tiny_shapes.py) under stronger
# augmentations (_base_/synthesis/inversion_augmented.py: zoom and colour shift added). Also the
# synthesis config of ./dfkd_augmented_images_mosaic_deit_tiny_shapes.py's bank.
_base_ = [
    './_base_/models/distiller_r18_deit_tiny.py',
    './_base_/datasets/synthetic_targets.py',
    './_base_/schedules/kd_student_800it.py',
    './_base_/synthesis/inversion_augmented.py',
]

num_synthetic = 256

train_dataloader = dict(dataset=dict(draw_targets=False))
