# The demo ViT student's detector: the teacher's RetinaNet (./retinanet_r18_shapes.py: same
# classes, head shapes and anchors, so head-level distillation terms apply between the two) with
# a ViT backbone and a simple feature pyramid in place of ResNet-18 and FPN.
#
# Backbone: timm's DeiT-Tiny recipe (`deit_tiny_patch16_224`) narrowed to two thirds of its
# width (embedding 128, 2 heads of 64 channels, as DeiT-Tiny's heads) and shaped for 128 px
# images learned from scratch: 8 px patches (a 16x16 token grid, stride 8, fine enough for 15 px
# objects), 6 blocks with global attention (256 tokens are cheap). The width is what makes the
# student compress: at DeiT-Tiny's 192 it had 0.33x the teacher's parameters but 1.33x its
# GFLOPs and 1.31x its CPU latency at 128 px; at 128 it is smaller and faster on all three
# (benchmarks/compactness.py, README). Shifted patch tokenization and locality self-attention
# (SPT/LSA, Lee et al. 2021: ViTs on small datasets) give the from-scratch ViT some of a CNN's
# locality; measured on the demo (800 iterations, same seed, at width 192): real-data student
# 0.116 -> 0.161 mAP, data-free student 0.119 -> 0.136. A simple feature pyramid builds strides
# 8, 16 and 32 (the teacher's FPN levels). GroupNorm in neck and head: synthetic batches are
# small.
_base_ = './retinanet_r18_shapes.py'

gn = dict(type='GN', num_groups=32, requires_grad=True)
model = dict(
    backbone=dict(
        _delete_=True,
        type='TimmViT',
        model_name='deit_tiny_patch16_224',
        out_indices=(-1, ),
        window_size=0,
        spt=True,
        lsa=True,
        drop_path_rate=0.1,
        timm_kwargs=dict(img_size=128, patch_size=8, depth=6, embed_dim=128, num_heads=2)),
    neck=dict(
        _delete_=True,
        type='SimpleFeaturePyramid',
        in_channels=128,
        out_channels=128,
        scale_factors=(1.0, 0.5),
        num_outs=3,
        add_extra_convs=True,
        norm_cfg=gn),
    bbox_head=dict(norm_cfg=gn))
