# The demo ViT teacher's detector (_base_/models/retinanet_vit256_shapes.py) on the shapes data:
# the config it is evaluated with (benchmarks/quality.py's teacher_vit256 row, tools/test.py)
# once ./kd_vit256_teacher_shapes.py has trained it and tools/export_student.py exported it
# (`make demo-vit-teacher`):
#   python tools/test.py configs/demo/retinanet_vit256_shapes.py \
#       work_dirs/demo/teacher_vit256/student.pth
# Training with it learns from the labels alone (the student's schedule), which a ViT of this
# size does poorly from 2k images; the demo teacher is trained by distillation instead.
_base_ = [
    './_base_/models/retinanet_vit256_shapes.py',
    './_base_/datasets/shapes.py',
    './_base_/schedules/student_800it.py',
]
