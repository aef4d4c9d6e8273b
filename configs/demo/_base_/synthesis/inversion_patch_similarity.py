# The demo's inversion (./inversion.py) for a teacher without BatchNorm statistics (a ViT with
# LayerNorm and GroupNorm), with the inversion prior of the data-free ViT literature in their
# place: PSAQ-ViT's patch-similarity prior (mmdfkd.models.synthesis.PatchSimilarityLoss). On
# real images the self-attention outputs of different patches differ, so their pairwise cosine
# similarities spread widely; on images that only satisfy the detection loss they bunch
# together. The prior maximizes the entropy of that distribution in every block of the teacher.
# Weight 1: the prior's loss (log(64) minus the entropy, at most log(64) = 4.2) and the
# teacher's detection loss (about 2 at the start of inversion) are of one order. The other
# settings are ./inversion.py's, restated because mmengine replaces a list (custom_hooks)
# whole; bn_weight is 0, since such a teacher has no BN statistics (a test checks that nothing
# else differs).
_base_ = './inversion.py'

custom_hooks = [
    dict(
        type='ImageSynthesisHook',
        synthesizer=dict(
            type='InversionSynthesizer',
            loss=dict(det_weight=1.0, bn_weight=0., psim_weight=1.0, tv_l1_weight=2.0,
                      tv_l2_weight=0.001,
                      augment=dict(jitter=16, flip=True, brightness=0.1, contrast=0.1)),
            total_steps=80, lr=0.05, lowres_steps=60, lowres_scale=0.5,
            fp_sampling=dict(start=50, interval=10, score_thr=0.5),
            steps_per_iter=6, buffer_size=128, initial_cohorts=2),
        vis_interval=100),
]
