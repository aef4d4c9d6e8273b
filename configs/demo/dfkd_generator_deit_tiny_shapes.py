# Data-free distillation with a generator network (DAFL / DFAD style) instead of per-image
# inversion: a BoxConditionedGenerator maps noise and the batch's sampled box layout to an
# image. Every training iteration the generator takes `steps_per_iter` Adam steps on the
# inversion loss (teacher detection loss toward the sampled boxes, BatchNorm statistics, image
# priors), then makes the batch the student distills on. Same distiller, terms, data and schedule
# as dfkd_deit_tiny_shapes.py.
_base_ = [
    './_base_/models/distiller_r18_deit_tiny.py',
    './_base_/datasets/synthetic_targets.py',
    './_base_/schedules/kd_student_800it.py',
]

custom_hooks = [
    dict(
        type='ImageSynthesisHook',
        synthesizer=dict(
            type='GeneratorSynthesizer',
            loss=dict(
                det_weight=1.0,
                bn_weight=0.05,
                bn_first_multiplier=10.,
                tv_l1_weight=0.05,
                tv_l2_weight=0.001,
                augment=dict(jitter=8, flip=True, brightness=0.1, contrast=0.1),
                adi_weight=0.0),
            steps_per_iter=1),
        vis_interval=100),
]
