# ./dfkd_images_mosaic_deit_tiny_shapes.py (the demo's recipe: stored images, half the views
# mosaics, the CNN teacher online) on images inverted as Fourier spectra
# (./dfkd_fourier_deit_tiny_shapes.py, `synthesis_config` for benchmarks/quality.py).
_base_ = [
    './_base_/models/distiller_r18_deit_tiny.py',
    './_base_/datasets/synthetic_images_mosaic.py',
    './_base_/schedules/kd_student_800it.py',
]

synthesis_config = 'dfkd_fourier_deit_tiny_shapes.py'
bank_root = 'work_dirs/demo/synthetic_bank_fourier/'
train_dataloader = dict(dataset=dict(data_root=bank_root))
