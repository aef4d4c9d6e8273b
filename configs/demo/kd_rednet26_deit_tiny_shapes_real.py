# Real-data knowledge distillation from the involution teacher: the demo ViT student learns from
# the RedNet-26 demo teacher (`make demo-rednet-teacher`) on the real demo train images, with
# the terms and schedule of ./kd_deit_tiny_shapes_real.py. The synthetic / real ratio of the
# data-free rows from that teacher (benchmarks/quality.py) divides by this row.
_base_ = [
    './_base_/models/distiller_rednet26_deit_tiny_real.py',
    './_base_/datasets/shapes.py',
    './_base_/schedules/kd_student_800it.py',
]
