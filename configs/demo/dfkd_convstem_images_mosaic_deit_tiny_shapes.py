# The demo's data-free recipe (./dfkd_images_mosaic_deit_tiny_shapes.py: stored inverted images,
# half of the views mosaics, the teacher run online) with a hybrid ViT student whose stem is
# the teacher's, inherited and frozen (_base_/models/conv_stem_r18.py).
_base_ = [
    './_base_/models/distiller_r18_deit_tiny_convstem.py',
    './_base_/datasets/synthetic_images_mosaic.py',
    './_base_/schedules/kd_student_800it.py',
]
