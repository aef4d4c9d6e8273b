# The demo's data-free recipe (./dfkd_images_mosaic_deit_tiny_shapes.py: stored images, half
# the views 4-image mosaics, the teachers run online) with both teachers, convolution and
# involution: the images are inverted from both (./dfkd_ensemble_deit_tiny_shapes.py,
# `synthesis_config` for benchmarks/quality.py), and the student learns from both on every
# view, each term weighted by the teachers' weights.
_base_ = [
    './_base_/models/distiller_r18_rednet26_deit_tiny.py',
    './_base_/datasets/synthetic_images_mosaic.py',
    './_base_/schedules/kd_student_800it.py',
]

synthesis_config = 'dfkd_ensemble_deit_tiny_shapes.py'
bank_root = 'work_dirs/demo/synthetic_bank_ensemble/'
train_dataloader = dict(dataset=dict(data_root=bank_root))
