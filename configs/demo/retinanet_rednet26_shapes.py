# Demo involution teacher: RetinaNet with a RedNet-26 backbone (BatchNorm trained everywhere),
# trained from scratch with plain mmdet on the shapes dataset like the CNN demo teacher
# (./retinanet_r18_shapes.py): same data, 1500 iterations of AdamW. The schedule's linear
# warm-up and gradient-norm clipping are what the published RedNet detectors need to train
# without NaN losses.
#   python tools/train.py configs/demo/retinanet_rednet26_shapes.py \
#       --work-dir work_dirs/demo/teacher_rednet26
_base_ = [
    './_base_/models/retinanet_rednet26_shapes.py',
    './_base_/datasets/shapes.py',
    './_base_/schedules/teacher_1500it.py',
]

default_hooks = dict(checkpoint=dict(max_keep_ckpts=2))
