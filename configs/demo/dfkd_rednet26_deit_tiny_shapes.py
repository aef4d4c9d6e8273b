# Data-free distillation from the involution teacher alone (_base_/models/
# distiller_rednet26_deit_tiny.py): the demo's inversion (its BN statistics, detection loss,
# image priors; _base_/synthesis/inversion.py) run on the RedNet-26 teacher, which has BN
# everywhere. Also the synthesis settings of ./dfkd_rednet26_images_mosaic_deit_tiny_shapes.py:
#   python tools/generate_synthetic.py configs/demo/dfkd_rednet26_deit_tiny_shapes.py \
#       --num 256 --out work_dirs/demo/synthetic_bank_rednet26
_base_ = [
    './_base_/models/distiller_rednet26_deit_tiny.py',
    './_base_/datasets/synthetic_targets.py',
    './_base_/schedules/kd_student_800it.py',
    './_base_/synthesis/inversion.py',
]

num_synthetic = 256

train_dataloader = dict(dataset=dict(draw_targets=False))
