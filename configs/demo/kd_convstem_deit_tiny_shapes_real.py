# Real-data knowledge distillation (./kd_deit_tiny_shapes_real.py: the data-free terms plus the
# ground truth, on the real demo train images) with the hybrid ViT student of
# _base_/models/conv_stem_r18.py: the reference its data-free row is divided by.
_base_ = [
    './_base_/models/distiller_r18_deit_tiny_convstem_real.py',
    './_base_/datasets/shapes.py',
    './_base_/schedules/kd_student_800it.py',
]
