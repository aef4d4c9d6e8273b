"""RetinaNet student: DeiT-Tiny (windowed attention, ViTDet) with a simple feature pyramid.

The backbone attends in 14x14-token windows except in blocks 2, 5, 8 and 11 (global), so its
cost grows linearly with the image area. The simple feature pyramid builds strides 8-32 from the
stride-16 map, and two stride-2 convolutions give strides 64 and 128: the same P3-P7 levels as the
teacher's FPN, so the head and anchors of the base config apply unchanged. Neck and head use
128 channels and GroupNorm (synthetic batches are small).

Weights: timm's random initialisation. To start from local ImageNet weights set
``model.backbone.init_cfg=dict(type='Pretrained', checkpoint='PATH/deit_tiny_patch16_224.pth')``.
"""
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmdfkd'], allow_failed_imports=False)

norm_cfg = dict(type='GN', num_groups=32, requires_grad=True)
model = dict(
    backbone=dict(
        _delete_=True,
        type='TimmViT',
        model_name='deit_tiny_patch16_224',
        out_indices=(-1,),
        window_size=14,
        global_attn_indices=(2, 5, 8, 11),
        drop_path_rate=0.1),
    neck=dict(
        _delete_=True,
        type='SimpleFeaturePyramid',
        in_channels=192,
        out_channels=128,
        scale_factors=(2.0, 1.0, 0.5),
        num_outs=5,
        add_extra_convs=True,
        norm_cfg=norm_cfg),
    bbox_head=dict(in_channels=128, feat_channels=128, norm_cfg=norm_cfg))

# AdamW with layer-wise lr decay (ViTDet); no weight decay on norms, biases and embeddings.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    constructor='LayerDecayOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(
        layer_decay_rate=0.7,
        norm_decay_mult=0.,
        bias_decay_mult=0.,
        custom_keys={
            'pos_embed': dict(decay_mult=0.),
            'cls_token': dict(decay_mult=0.)
        }),
    clip_grad=dict(max_norm=1.0, norm_type=2))

# 'atomic_local' (registered by mmdfkd) writes a checkpoint to a temporary file and renames it,
# so a run killed while saving leaves no truncated .pth behind.
default_hooks = dict(checkpoint=dict(backend_args=dict(backend='atomic_local')))
