# The demo's distiller (./distiller_r18_deit_tiny.py) with the hybrid ViT student of
# ./conv_stem_r18.py: the teacher's frozen stem under the student's ViT, inherited with the head.
_base_ = ['./distiller_r18_deit_tiny.py', './conv_stem_r18.py']

model = dict(student={{_base_.conv_stem_student}}, inherit={{_base_.conv_stem_inherit}})
