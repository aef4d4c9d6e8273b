# Data-free distillation from stored synthetic images, composed into new scenes: as
# dfkd_images_deit_tiny_shapes.py (the teacher run online on every view, its detections the
# student's targets), with half of the views a mosaic of four bank images (mmdet's CachedMosaic)
# shrunk to the input size. The teacher relabels each composed scene in one forward pass, so
# the student sees objects in new contexts, at smaller sizes and next to each other, without a
# single extra synthesis step (DIODE's tiles; Multi-Object Impressions compose inverted
# objects the same way). The views that are not mosaics get dfkd_images' scale jitter.
_base_ = [
    './_base_/models/distiller_r18_deit_tiny.py',
    './_base_/datasets/synthetic_images_mosaic.py',
    './_base_/schedules/kd_student_800it.py',
]
