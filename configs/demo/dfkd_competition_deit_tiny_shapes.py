# Data-free distillation with images inverted during training against the student's progress:
# the demo's online inversion (./dfkd_deit_tiny_shapes.py: images synthesized while the student
# trains, a sliding buffer of the newest 128) with the competition term of adaptive
# DeepInversion (_base_/synthesis/inversion_competition.py), which rewards images on which the
# student still disagrees with the teacher.
_base_ = [
    './_base_/models/distiller_r18_deit_tiny.py',
    './_base_/datasets/synthetic_targets.py',
    './_base_/schedules/kd_student_800it.py',
    './_base_/synthesis/inversion_competition.py',
]

train_dataloader = dict(dataset=dict(draw_targets=False))
