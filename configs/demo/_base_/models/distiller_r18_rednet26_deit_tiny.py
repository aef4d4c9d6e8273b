# The demo's distiller (./distiller_r18_deit_tiny.py) with two teachers of different inductive
# biases (Co-advise, Ren et al. 2022): the CNN teacher (./retinanet_r18_shapes.py) and the
# involution teacher (./retinanet_rednet26_shapes.py). Both heads have the same shapes and
# anchors, so every term compares the student with each teacher and adds the two losses with
# the teachers' weights (0.5 each: the sum has the scale of one teacher's); the detections
# term fuses both teachers' detections into one set of targets. The student's head starts from
# the first teacher's (`inherit`).
_base_ = './distiller_r18_deit_tiny.py'

model = dict(teachers=[
    dict(config='{{fileDirname}}/retinanet_r18_shapes.py',
         checkpoint={{_base_.teacher_checkpoint}}, weight=0.5),
    dict(config='{{fileDirname}}/retinanet_rednet26_shapes.py',
         checkpoint='work_dirs/demo/teacher_rednet26/iter_1500.pth', weight=0.5),
])
