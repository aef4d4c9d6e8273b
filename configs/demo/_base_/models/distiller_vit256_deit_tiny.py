# The demo's distiller (./distiller_r18_deit_tiny.py: same ViT student, terms and inherited
# head) with the ViT teacher (./retinanet_vit256_shapes.py, twice the student's width, no
# BatchNorm; `make demo-vit-teacher` trains and exports it) in place of the CNN teacher. Its
# head has the student's shapes and norms (GroupNorm), so the student inherits it as is.
_base_ = './distiller_r18_deit_tiny.py'

model = dict(teachers=[dict(config='{{fileDirname}}/retinanet_vit256_shapes.py',
                            checkpoint='work_dirs/demo/teacher_vit256/student.pth')])
