# ./dfkd_rednet26_images_mosaic_deit_tiny_shapes.py (stored images, half the views mosaics, the
# involution teacher online) on images inverted from that teacher as Fourier spectra
# (./dfkd_rednet26_fourier_deit_tiny_shapes.py, `synthesis_config` for benchmarks/quality.py).
_base_ = [
    './_base_/models/distiller_rednet26_deit_tiny.py',
    './_base_/datasets/synthetic_images_mosaic.py',
    './_base_/schedules/kd_student_800it.py',
]

synthesis_config = 'dfkd_rednet26_fourier_deit_tiny_shapes.py'
bank_root = 'work_dirs/demo/synthetic_bank_rednet26_fourier/'
train_dataloader = dict(dataset=dict(data_root=bank_root))
