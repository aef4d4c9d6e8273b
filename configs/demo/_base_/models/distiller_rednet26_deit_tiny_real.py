# The real-data distiller (./distiller_r18_deit_tiny_real.py: the data-free terms, ground truth
# kept in PseudoBoxLoss) with the involution teacher (./retinanet_rednet26_shapes.py) in place
# of the CNN teacher: what the involution teacher teaches when the images are real.
_base_ = './distiller_r18_deit_tiny_real.py'

model = dict(teachers=[dict(config='{{fileDirname}}/retinanet_rednet26_shapes.py',
                            checkpoint='work_dirs/demo/teacher_rednet26/iter_1500.pth')])
