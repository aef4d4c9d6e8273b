# Demo ViT student trained on the real demo images, without distillation: the baseline that
# distillation is measured against. Same data as the teacher; same schedule (800 iterations) as
# every distilled demo student.
_base_ = [
    './_base_/models/retinanet_deit_tiny_shapes.py',
    './_base_/datasets/shapes.py',
    './_base_/schedules/student_800it.py',
]
