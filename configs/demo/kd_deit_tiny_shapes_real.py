# Real-data knowledge distillation baseline: the demo ViT student learns from the demo teacher
# on the real demo images, with the data-free configs' terms and the ground truth kept in
# PseudoBoxLoss (_base_/models/distiller_r18_deit_tiny_real.py).
# Run `make demo` (or tools/train.py configs/demo/retinanet_r18_shapes.py) first: the teacher
# checkpoint (`teacher_checkpoint` in _base_/models/distiller_r18_deit_tiny.py) must exist.
_base_ = [
    './_base_/models/distiller_r18_deit_tiny_real.py',
    './_base_/datasets/shapes.py',
    './_base_/schedules/kd_student_800it.py',
]
