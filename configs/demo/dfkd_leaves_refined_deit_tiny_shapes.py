# Data-free distillation from dead-leaves images refined by a short inversion of the teacher
# (_base_/synthesis/inversion_leaves_short.py): the demo's data-free recipe
# (./dfkd_deit_tiny_shapes.py) with images started from dead leaves and refined for 40
# full-resolution steps. Also the synthesis config of the stored images of
# ./dfkd_leaves_refined_images_mosaic_deit_tiny_shapes.py (tools/generate_synthetic.py reads the
# hook's synthesizer).
_base_ = [
    './_base_/models/distiller_r18_deit_tiny.py',
    './_base_/datasets/synthetic_targets.py',
    './_base_/schedules/kd_student_800it.py',
    './_base_/synthesis/inversion_leaves_short.py',
]

# As many images as the demo's bank, at half its teacher passes per image.
num_synthetic = 256

train_dataloader = dict(dataset=dict(draw_targets=False))
