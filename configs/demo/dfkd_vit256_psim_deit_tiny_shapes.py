# Data-free distillation from the ViT teacher (_base_/models/distiller_vit256_deit_tiny.py)
# with the patch-similarity prior in place of the BN statistics it lacks
# (_base_/synthesis/inversion_patch_similarity.py); otherwise the fallback of
# ./dfkd_vit256_deit_tiny_shapes.py. Also the synthesis settings of
# ./dfkd_vit256_psim_images_mosaic_deit_tiny_shapes.py:
#   python tools/generate_synthetic.py configs/demo/dfkd_vit256_psim_deit_tiny_shapes.py \
#       --num 256 --out work_dirs/demo/synthetic_bank_vit256_psim
_base_ = [
    './_base_/models/distiller_vit256_deit_tiny.py',
    './_base_/datasets/synthetic_targets.py',
    './_base_/schedules/kd_student_800it.py',
    './_base_/synthesis/inversion_patch_similarity.py',
]

num_synthetic = 256

train_dataloader = dict(dataset=dict(draw_targets=False))
