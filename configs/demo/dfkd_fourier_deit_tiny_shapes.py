# The demo's inversion of the CNN teacher (./dfkd_deit_tiny_shapes.py) with the images optimized
# as Fourier spectra (_base_/synthesis/inversion_fourier.py), the setting that rescues the
# involution teacher's inversion (./dfkd_rednet26_fourier_deit_tiny_shapes.py): whether it holds
# for the CNN teacher too.
_base_ = [
    './_base_/models/distiller_r18_deit_tiny.py',
    './_base_/datasets/synthetic_targets.py',
    './_base_/schedules/kd_student_800it.py',
    './_base_/synthesis/inversion_fourier.py',
]

num_synthetic = 256

train_dataloader = dict(dataset=dict(draw_targets=False))
