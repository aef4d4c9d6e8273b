# Data-free distillation from stored synthetic images with the teacher run online (`make demo`
# runs it with half of the views mosaics: ./dfkd_images_mosaic_deit_tiny_shapes.py): the
# images dfkd_deit_tiny_shapes.py's synthesis made once are augmented (scale, crop, flip) before
# the teacher and the student see them, so every epoch over the bank gives new views and new
# teacher outputs. Their sampled targets are not used as labels (the
# distiller's PseudoBoxLoss keeps only the teacher's detections). This costs a teacher forward
# pass per step, which the stored-output bank (dfkd_bank_deit_tiny_shapes.py) saves, and avoids
# over-fitting a small bank. No real training image is read; nothing is synthesized during
# training. Same distiller, terms and schedule as dfkd_deit_tiny_shapes.py.
_base_ = [
    './_base_/models/distiller_r18_deit_tiny.py',
    './_base_/datasets/synthetic_images.py',
    './_base_/schedules/kd_student_800it.py',
]
