# The demo's inversion (./inversion.py) with the competition term of adaptive DeepInversion:
# images on which the student already agrees with the teacher are penalized
# (`adi_weight * (1 - disagreement)`, the Jensen-Shannon divergence of their class scores;
# StudentTeacherDisagreement), so synthesis, run during training, keeps making images the student
# has not learned yet. adi_weight 100: on the demo's inverted images and its trained data-free
# student, the disagreement's image gradient is 525 times smaller than the detection loss's
# (per-anchor scores agree on the background that fills most anchors), so 100 gives the term a
# fifth of the detection loss's pull at the end of training, and more while the student still
# disagrees.
_base_ = './inversion.py'

custom_hooks = [
    dict(
        type='ImageSynthesisHook',
        synthesizer=dict(
            type='InversionSynthesizer',
            loss=dict(det_weight=1.0, bn_weight=0.05, bn_first_multiplier=10.,
                      tv_l1_weight=2.0, tv_l2_weight=0.001,
                      augment=dict(jitter=16, flip=True, brightness=0.1, contrast=0.1),
                      adi_weight=100.0),
            total_steps=80, lr=0.05, lowres_steps=60, lowres_scale=0.5,
            fp_sampling=dict(start=50, interval=10, score_thr=0.5),
            steps_per_iter=6, buffer_size=128, initial_cohorts=2),
        vis_interval=100),
]
