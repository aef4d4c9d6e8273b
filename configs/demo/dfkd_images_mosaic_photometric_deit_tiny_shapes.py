# Data-free distillation from the demo's stored synthetic images in mosaics, their colours
# randomized (_base_/datasets/synthetic_images_mosaic_photometric.py): the recipe of
# ./dfkd_images_mosaic_deit_tiny_shapes.py with mmdet's PhotoMetricDistortion on every view.
# Measured on the demo (benchmarks/quality.py, row dfkd_images_mosaic_photometric): 0.216 mAP
# against 0.230 without it, so make demo does not use it.
_base_ = [
    './_base_/models/distiller_r18_deit_tiny.py',
    './_base_/datasets/synthetic_images_mosaic_photometric.py',
    './_base_/schedules/kd_student_800it.py',
]
