# The demo's inversion: ImageSynthesisHook with an InversionSynthesizer that inverts the frozen
# teacher (detection loss toward the sampled targets, BatchNorm statistics, image priors,
# box-moving augmentations, false-positive sampling). A leaf that uses it trains on
# SyntheticDetDataset items without targets (`draw_targets=False`): the synthesizer draws a
# batch's targets only when it starts images for it.
custom_hooks = [
    dict(
        type='ImageSynthesisHook',
        synthesizer=dict(
            type='InversionSynthesizer',
            loss=dict(
                det_weight=1.0,
                bn_weight=0.05,
                bn_first_multiplier=10.,
                tv_l1_weight=2.0,
                tv_l2_weight=0.001,
                augment=dict(jitter=16, flip=True, brightness=0.1, contrast=0.1),
                # Competition term (adaptive DeepInversion): not measured on the demo yet.
                adi_weight=0.0),
            # Measured on the demo teacher (8 images, 60 steps; recall = targets the teacher
            # finds at IoU 0.5, score 0.3): lr 0.1, TV-L1 0.05, 30 low-res steps left pixel
            # noise everywhere (BN loss 80, recall 16/21); lr 0.05, TV-L1 2.0, 45 low-res steps
            # gave flat regions and clean edges like the real images (BN loss 56, recall 20/27)
            # at 40% less compute, since the teacher scores low-res steps at low resolution.
            total_steps=80,
            lr=0.05,
            lowres_steps=60,
            lowres_scale=0.5,
            fp_sampling=dict(start=50, interval=10, score_thr=0.5),
            steps_per_iter=6,
            buffer_size=128,
            initial_cohorts=2),
        vis_interval=100),
]
