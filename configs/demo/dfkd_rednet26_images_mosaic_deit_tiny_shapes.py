# The demo's data-free recipe (./dfkd_images_mosaic_deit_tiny_shapes.py: stored images, half
# the views 4-image mosaics, the teacher run online) with the involution teacher alone: the
# images are inverted from it (./dfkd_rednet26_deit_tiny_shapes.py, `synthesis_config` for
# benchmarks/quality.py) and it labels every view.
_base_ = [
    './_base_/models/distiller_rednet26_deit_tiny.py',
    './_base_/datasets/synthetic_images_mosaic.py',
    './_base_/schedules/kd_student_800it.py',
]

synthesis_config = 'dfkd_rednet26_deit_tiny_shapes.py'
bank_root = 'work_dirs/demo/synthetic_bank_rednet26/'
train_dataloader = dict(dataset=dict(data_root=bank_root))
