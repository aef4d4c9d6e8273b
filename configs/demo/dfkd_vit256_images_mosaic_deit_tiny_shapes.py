# The demo's data-free recipe (./dfkd_images_mosaic_deit_tiny_shapes.py: stored images, half
# the views 4-image mosaics, the teacher run online) with the ViT teacher alone: the images are
# inverted from it without a BN prior (./dfkd_vit256_deit_tiny_shapes.py, `synthesis_config`
# for benchmarks/quality.py) and it labels every view.
_base_ = [
    './_base_/models/distiller_vit256_deit_tiny.py',
    './_base_/datasets/synthetic_images_mosaic.py',
    './_base_/schedules/kd_student_800it.py',
]

synthesis_config = 'dfkd_vit256_deit_tiny_shapes.py'
bank_root = 'work_dirs/demo/synthetic_bank_vit256/'
train_dataloader = dict(dataset=dict(data_root=bank_root))
