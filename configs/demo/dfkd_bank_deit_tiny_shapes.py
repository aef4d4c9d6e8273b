# Data-free distillation from a stored bank (FKD / LIB-KD style): the images
# dfkd_deit_tiny_shapes.py's synthesis made once, with the teacher's outputs on them, so a
# training step runs neither the synthesis nor the teacher. Same distiller, terms and schedule
# as dfkd_deit_tiny_shapes.py (the bank holds the outputs those terms read).
_base_ = [
    './_base_/models/distiller_r18_deit_tiny.py',
    './_base_/datasets/synthetic_bank.py',
    './_base_/schedules/kd_student_800it.py',
]
