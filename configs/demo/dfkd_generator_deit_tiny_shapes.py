# Data-free distillation with a generator network (DAFL / DFAD style) instead of per-image
# inversion: a BoxConditionedGenerator maps noise and the batch's sampled box layout to an
# image. Every training iteration it takes `generator_steps` Adam steps on the inversion loss
# (teacher detection loss toward the sampled boxes, BatchNorm statistics, image priors), then
# makes the batch the student distills on. Same student, terms and schedule as
# dfkd_deit_tiny_shapes.py.
_base_ = './dfkd_deit_tiny_shapes.py'

custom_hooks = [
    dict(
        type='SyntheticImageGeneratorHook',
        mode='generator',
        inversion=dict(
            det_weight=1.0,
            bn_weight=0.05,
            bn_first_multiplier=10.,
            tv_l1_weight=0.05,
            tv_l2_weight=0.001,
            augment=dict(jitter=8, flip=True, brightness=0.1, contrast=0.1),
            adi_weight=0.0),
        generator_steps=1,
        vis_interval=100),
]
