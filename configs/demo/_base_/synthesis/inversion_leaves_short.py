# Dead-leaves images refined by a short inversion (Baradad et al. 2021's procedural images as the
# start, DeepInversion/DIODE's losses as the refinement): the demo's inversion (./inversion.py,
# same losses and weights) started from dead leaves (occluding discs with natural images'
# scale-invariant edge and spectrum statistics) instead of smooth noise, for 40 full-resolution
# steps instead of 60 low-resolution and 20 full ones. The demo's long low-resolution phase
# blurs any start away; a short full-resolution refinement keeps the leaves' edges and
# occlusions, and the detection loss paints the teacher's targets into them at the sampled
# boxes. Half the teacher passes of the demo's inversion per image (44 + 40 instead of 84 + 80).
_base_ = './inversion.py'

custom_hooks = [
    dict(
        type='ImageSynthesisHook',
        synthesizer=dict(
            type='InversionSynthesizer',
            loss=dict(det_weight=1.0, bn_weight=0.05, bn_first_multiplier=10.,
                      tv_l1_weight=2.0, tv_l2_weight=0.001,
                      augment=dict(jitter=16, flip=True, brightness=0.1, contrast=0.1)),
            init='dead_leaves',
            total_steps=40, lr=0.05, lowres_steps=0,
            fp_sampling=dict(start=20, interval=10, score_thr=0.5),
            steps_per_iter=5, buffer_size=128, initial_cohorts=2),
        vis_interval=100),
]
