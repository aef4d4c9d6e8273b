# The demo's inversion (./inversion.py) under stronger augmentations, after Plug-In Inversion
# (Ghiasi et al. 2022: augmentation ensembles alone make recognizable inversions of CNNs and
# ViTs, no BN statistics needed): each step the teacher sees every image zoomed by up to 30% in
# or out (boxes moved with it) and with its colour channels shifted (gain and offset, std 0.1),
# besides the demo's roll, flip, brightness and contrast. Targets then survive only as shapes
# the teacher finds at several scales and colour balances, not as one exact pixel pattern.
_base_ = './inversion.py'

custom_hooks = [
    dict(
        type='ImageSynthesisHook',
        synthesizer=dict(
            type='InversionSynthesizer',
            loss=dict(det_weight=1.0, bn_weight=0.05, bn_first_multiplier=10.,
                      tv_l1_weight=2.0, tv_l2_weight=0.001,
                      augment=dict(jitter=16, flip=True, brightness=0.1, contrast=0.1,
                                   zoom=0.3, color=0.1)),
            total_steps=80, lr=0.05, lowres_steps=60, lowres_scale=0.5,
            fp_sampling=dict(start=50, interval=10, score_thr=0.5),
            steps_per_iter=6, buffer_size=128, initial_cohorts=2),
        vis_interval=100),
]
