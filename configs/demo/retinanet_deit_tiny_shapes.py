# Demo ViT student trained on the real demo images, without distillation: the baseline that
# distillation is measured against. Same data, schedule and anchors as the teacher
# (retinanet_r18_shapes.py), so head-level distillation losses apply between the two.
#
# Backbone: DeiT-Tiny from timm, windowed attention (8x8 tokens) with global attention in
# blocks 2, 5, 8 and 11; a simple feature pyramid builds strides 8-128 from its stride-16 map.
# GroupNorm in neck and head: synthetic batches are small.
_base_ = './retinanet_r18_shapes.py'

gn = dict(type='GN', num_groups=32, requires_grad=True)
model = dict(
    backbone=dict(
        _delete_=True,
        type='TimmViT',
        model_name='deit_tiny_patch16_224',
        out_indices=(-1, ),
        window_size=8,
        global_attn_indices=(2, 5, 8, 11),
        drop_path_rate=0.1,
        timm_kwargs=dict(img_size=256)),
    neck=dict(
        _delete_=True,
        type='SimpleFeaturePyramid',
        in_channels=192,
        out_channels=128,
        scale_factors=(2.0, 1.0, 0.5),
        num_outs=5,
        add_extra_convs=True,
        norm_cfg=gn),
    bbox_head=dict(norm_cfg=gn))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    constructor='LayerDecayOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=5e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(
        layer_decay_rate=0.8,
        norm_decay_mult=0.,
        bias_decay_mult=0.,
        custom_keys={
            'pos_embed': dict(decay_mult=0.),
            'cls_token': dict(decay_mult=0.)
        }),
    clip_grad=dict(max_norm=1.0, norm_type=2))
