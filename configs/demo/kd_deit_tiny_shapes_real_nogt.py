# Knowledge distillation on the real demo train images with exactly the data-free recipe's
# terms and nothing else: the distiller of the data-free configs
# (_base_/models/distiller_r18_deit_tiny.py: PKD on the FPN features, per-anchor class scores,
# box regression and the teacher's confident detections; no ground truth, the inherited head)
# on the real images. What the data-free student would reach if its images were the real ones:
# the reference that isolates the images. ./kd_deit_tiny_shapes_real.py adds the ground truth
# (kept inside PseudoBoxLoss), as a user with the data would train.
_base_ = [
    './_base_/models/distiller_r18_deit_tiny.py',
    './_base_/datasets/shapes.py',
    './_base_/schedules/kd_student_800it.py',
]
