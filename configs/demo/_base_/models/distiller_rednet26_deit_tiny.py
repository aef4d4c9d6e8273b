# The demo's distiller (./distiller_r18_deit_tiny.py: same ViT student, terms and inherited
# head) with the involution teacher (./retinanet_rednet26_shapes.py, trained by
# configs/demo/retinanet_rednet26_shapes.py) in place of the CNN teacher.
_base_ = './distiller_r18_deit_tiny.py'

model = dict(teachers=[dict(config='{{fileDirname}}/retinanet_rednet26_shapes.py',
                            checkpoint='work_dirs/demo/teacher_rednet26/iter_1500.pth')])
