# The demo's inversion (./inversion.py) optimizing a decorrelated 1/f Fourier spectrum of each
# image instead of its pixels (`parameterization='fourier'`, Mordvintsev et al. 2018): a step
# changes mostly low frequencies, so a teacher whose input gradient is pixel noise (the
# involution teacher's kernels are generated per pixel from the image) cannot be fitted with
# pixel noise. lr 0.2: the parameterization moves about a quarter as far as pixels per unit of
# lr (mmdfkd/models/synthesis/image_parameterization.py).
_base_ = './inversion.py'

custom_hooks = [
    dict(
        type='ImageSynthesisHook',
        synthesizer=dict(
            type='InversionSynthesizer',
            loss=dict(det_weight=1.0, bn_weight=0.05, bn_first_multiplier=10.,
                      tv_l1_weight=2.0, tv_l2_weight=0.001,
                      augment=dict(jitter=16, flip=True, brightness=0.1, contrast=0.1)),
            parameterization=dict(type='fourier', decay=1.0),
            total_steps=80, lr=0.2, lowres_steps=60, lowres_scale=0.5,
            fp_sampling=dict(start=50, interval=10, score_thr=0.5),
            steps_per_iter=6, buffer_size=128, initial_cohorts=2),
        vis_interval=100),
]
