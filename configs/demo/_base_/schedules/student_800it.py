# The demo ViT student's schedule, with or without distillation: 800 iterations of AdamW (no
# weight decay on norms, biases and embeddings), linear warm-up then cosine decay, one
# validation and one checkpoint at the end.
_base_ = ['mmdet::_base_/schedules/schedule_1x.py', '../default_runtime.py']

max_iters = 800
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=max_iters)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    constructor='LayerDecayOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(
        layer_decay_rate=1.0,  # trained from scratch: every block learns at full rate
        norm_decay_mult=0.,
        bias_decay_mult=0.,
        custom_keys={
            'pos_embed': dict(decay_mult=0.),
            'cls_token': dict(decay_mult=0.)
        }),
    clip_grad=dict(max_norm=1.0, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=100, end=max_iters, eta_min=1e-5),
]
# mmengine deletes the oldest checkpoint before it writes the next one: keeping two leaves one
# whole checkpoint if a run is killed while saving.
default_hooks = dict(checkpoint=dict(interval=max_iters, max_keep_ckpts=2))
auto_scale_lr = dict(enable=False, base_batch_size=8)
