# The real-image distiller (./distiller_r18_deit_tiny_real.py: ground truth kept) with the
# hybrid ViT student of ./conv_stem_r18.py.
_base_ = ['./distiller_r18_deit_tiny_real.py', './conv_stem_r18.py']

model = dict(student={{_base_.conv_stem_student}}, inherit={{_base_.conv_stem_inherit}})
