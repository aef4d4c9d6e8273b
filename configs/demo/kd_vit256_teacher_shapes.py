# Trains the demo ViT teacher (_base_/models/retinanet_vit256_shapes.py) on the real demo train
# images, distilled from the CNN demo teacher the way DeiT was trained from a convolutional
# teacher: a ViT learned from scratch on 2k images is weak on its own, and DeiT's recipe is how
# such ViTs are made. The terms, ground truth (kept in PseudoBoxLoss) and schedule are those of
# ./kd_deit_tiny_shapes_real.py; only the student is wider
# (_base_/models/distiller_r18_vit256_real.py). `make demo-vit-teacher` runs it and exports the
# result as a plain detector, the teacher of ./dfkd_vit256_*:
#   python tools/train.py configs/demo/kd_vit256_teacher_shapes.py \
#       --work-dir work_dirs/demo/teacher_vit256
#   python tools/export_student.py configs/demo/kd_vit256_teacher_shapes.py \
#       work_dirs/demo/teacher_vit256/iter_800.pth --out work_dirs/demo/teacher_vit256
_base_ = [
    './_base_/models/distiller_r18_vit256_real.py',
    './_base_/datasets/shapes.py',
    './_base_/schedules/kd_student_800it.py',
]
