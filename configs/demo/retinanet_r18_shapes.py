# Demo teacher: RetinaNet with a ResNet-18 backbone (BatchNorm trained everywhere), trained from
# scratch with plain mmdet on the generated shapes dataset (`python tools/make_demo_data.py`)
# for 1500 iterations.
_base_ = [
    './_base_/models/retinanet_r18_shapes.py',
    './_base_/datasets/shapes.py',
    './_base_/schedules/teacher_1500it.py',
]
