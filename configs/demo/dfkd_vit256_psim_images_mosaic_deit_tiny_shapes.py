# As ./dfkd_vit256_images_mosaic_deit_tiny_shapes.py, from images inverted with the
# patch-similarity prior (./dfkd_vit256_psim_deit_tiny_shapes.py).
_base_ = [
    './_base_/models/distiller_vit256_deit_tiny.py',
    './_base_/datasets/synthetic_images_mosaic.py',
    './_base_/schedules/kd_student_800it.py',
]

synthesis_config = 'dfkd_vit256_psim_deit_tiny_shapes.py'
bank_root = 'work_dirs/demo/synthetic_bank_vit256_psim/'
train_dataloader = dict(dataset=dict(data_root=bank_root))
