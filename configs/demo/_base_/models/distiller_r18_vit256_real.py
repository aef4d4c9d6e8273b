# The real-data distiller (./distiller_r18_deit_tiny_real.py) with the student widened to the
# ViT teacher's detector (./retinanet_vit256_shapes.py; a test checks they agree): how the
# demo ViT teacher is trained (configs/demo/kd_vit256_teacher_shapes.py).
_base_ = './distiller_r18_deit_tiny_real.py'

model = dict(student=dict(
    backbone=dict(timm_kwargs=dict(embed_dim=256, num_heads=4)),
    neck=dict(in_channels=256)))
