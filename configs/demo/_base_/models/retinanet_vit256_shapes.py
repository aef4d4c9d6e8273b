# The demo ViT teacher's detector: the demo student's detector (./retinanet_deit_tiny_shapes.py:
# timm DeiT recipe, 8 px patches, 6 blocks, SPT/LSA, simple feature pyramid, RetinaNet head) at
# twice its width (embedding 256, 4 heads of 64 channels): 6.26M parameters against the
# student's 2.52M, about twice its compute. It has no BatchNorm anywhere (LayerNorm in the ViT,
# GroupNorm in neck and head), so data-free inversion has no BN running statistics to match
# (the setting of the data-free ViT compression work). Trained by
# configs/demo/kd_vit256_teacher_shapes.py (`make demo-vit-teacher`). DeiT-Small's width (384)
# would cost 4x the student's compute per step, which the demo's 2-core budget does not allow.
_base_ = './retinanet_deit_tiny_shapes.py'

model = dict(
    backbone=dict(timm_kwargs=dict(embed_dim=256, num_heads=4)),
    neck=dict(in_channels=256))
