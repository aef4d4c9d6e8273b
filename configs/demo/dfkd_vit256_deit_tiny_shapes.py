# Data-free distillation from the ViT teacher (_base_/models/distiller_vit256_deit_tiny.py),
# with the inversion a teacher without BatchNorm falls back to: the demo's inversion
# (_base_/synthesis/inversion.py), whose BN-statistics term finds no BN statistics in this
# teacher (the log says its bn_weight is ignored), so the teacher's detection loss toward the
# sampled targets and the image priors (total variation) shape the images. The baseline of
# ./dfkd_vit256_psim_deit_tiny_shapes.py, which adds the patch-similarity prior. Also the
# synthesis settings of ./dfkd_vit256_images_mosaic_deit_tiny_shapes.py:
#   python tools/generate_synthetic.py configs/demo/dfkd_vit256_deit_tiny_shapes.py \
#       --num 256 --out work_dirs/demo/synthetic_bank_vit256
_base_ = [
    './_base_/models/distiller_vit256_deit_tiny.py',
    './_base_/datasets/synthetic_targets.py',
    './_base_/schedules/kd_student_800it.py',
    './_base_/synthesis/inversion.py',
]

num_synthetic = 256

train_dataloader = dict(dataset=dict(draw_targets=False))
