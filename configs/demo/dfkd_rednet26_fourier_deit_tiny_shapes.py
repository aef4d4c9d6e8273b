# ./dfkd_rednet26_deit_tiny_shapes.py (the demo's inversion of the involution teacher) with the
# images optimized as Fourier spectra (_base_/synthesis/inversion_fourier.py): the pixel
# inversion of that teacher ends in pixel noise in which the teacher finds its targets.
#   python tools/generate_synthetic.py configs/demo/dfkd_rednet26_fourier_deit_tiny_shapes.py \
#       --num 256 --out work_dirs/demo/synthetic_bank_rednet26_fourier
_base_ = [
    './_base_/models/distiller_rednet26_deit_tiny.py',
    './_base_/datasets/synthetic_targets.py',
    './_base_/schedules/kd_student_800it.py',
    './_base_/synthesis/inversion_fourier.py',
]

num_synthetic = 256

train_dataloader = dict(dataset=dict(draw_targets=False))
