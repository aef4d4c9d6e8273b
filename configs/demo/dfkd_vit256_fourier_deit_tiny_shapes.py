# The inversion of the ViT teacher (./dfkd_vit256_deit_tiny_shapes.py: no BN statistics, the
# detection loss and image priors) with the images optimized as Fourier spectra
# (_base_/synthesis/inversion_fourier.py).
_base_ = [
    './_base_/models/distiller_vit256_deit_tiny.py',
    './_base_/datasets/synthetic_targets.py',
    './_base_/schedules/kd_student_800it.py',
    './_base_/synthesis/inversion_fourier.py',
]

num_synthetic = 256

train_dataloader = dict(dataset=dict(draw_targets=False))
