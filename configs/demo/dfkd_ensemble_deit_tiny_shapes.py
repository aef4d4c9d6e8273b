# Data-free distillation from two teachers of different inductive biases, convolution and
# involution (_base_/models/distiller_r18_rednet26_deit_tiny.py; Co-advise): the demo's
# inversion run on both at once. Each teacher's BN statistics and detection loss toward the
# sampled boxes, weighted by the teachers' weights, shape the same images, so the images hold
# what both teachers detect. Also the synthesis settings of the ensemble's stored recipes:
#   python tools/generate_synthetic.py configs/demo/dfkd_ensemble_deit_tiny_shapes.py \
#       --num 256 --out work_dirs/demo/synthetic_bank_ensemble --store-outputs
_base_ = [
    './_base_/models/distiller_r18_rednet26_deit_tiny.py',
    './_base_/datasets/synthetic_targets.py',
    './_base_/schedules/kd_student_800it.py',
    './_base_/synthesis/inversion.py',
]

num_synthetic = 256

train_dataloader = dict(dataset=dict(draw_targets=False))
