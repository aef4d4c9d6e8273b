# The demo teacher's schedule: 1500 iterations of AdamW, linear warm-up then cosine decay, one
# validation and one checkpoint at the end.
_base_ = ['mmdet::_base_/schedules/schedule_1x.py', '../default_runtime.py']

max_iters = 1500
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=max_iters)
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=2e-3, weight_decay=0.05),
    clip_grad=dict(max_norm=10, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=100, end=max_iters, eta_min=1e-5),
]
# One checkpoint is kept (the teacher's own choice: no other schedule inherits this one).
default_hooks = dict(checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
auto_scale_lr = dict(enable=False, base_batch_size=8)
