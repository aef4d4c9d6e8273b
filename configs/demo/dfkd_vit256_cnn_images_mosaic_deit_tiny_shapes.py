# The ViT teacher (./dfkd_vit256_images_mosaic_deit_tiny_shapes.py) teaching from the CNN
# teacher's inverted images (the bank of `make demo`, ./dfkd_deit_tiny_shapes.py's inversion)
# instead of its own: the same recipe (stored images, half the views 4-image mosaics, the ViT
# teacher run online on every view). It separates the two reasons the ViT teacher keeps more of
# its accuracy data-free than the CNN teacher: a teacher of the student's kind, or easier
# images to learn from.
_base_ = [
    './_base_/models/distiller_vit256_deit_tiny.py',
    './_base_/datasets/synthetic_images_mosaic.py',
    './_base_/schedules/kd_student_800it.py',
]
