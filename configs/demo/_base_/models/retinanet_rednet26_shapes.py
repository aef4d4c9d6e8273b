# The demo's involution teacher: the CNN demo teacher's RetinaNet (./retinanet_r18_shapes.py:
# same classes, FPN levels at strides 8, 16 and 32 with 128 channels, head shapes and anchors,
# BatchNorm trained everywhere so the BN-statistics prior applies) with a RedNet-26 backbone
# at half width (mmdfkd's RedNet: the bottleneck's 3x3 conv and the stem's middle conv
# replaced by involution, kernel 7, group channels 16, reduction 4, as published; 32 involution
# channels in the first stage instead of 64, stage outputs 128 to 1024 channels). Half width:
# the pure-PyTorch involution unfolds 49 copies of each feature map, and at full width one
# training iteration took twice as long as at half width (2.5 s against 1.2 s on one CPU
# thread, measured side by side). Co-advise's teachers are light ones, too: this one has
# 3.17M parameters (1.81M in the backbone), the ResNet-18 teacher 12.43M.
# Involution generates
# its kernel from the pixel it is applied at and shares it across channels: the inductive
# bias Co-advise pairs with convolution's (the same kernel at every position, one per channel).
# Same head as the CNN teacher, so the student's dense head terms apply to both teachers and
# the two teachers' outputs can be averaged anchor by anchor.
_base_ = './retinanet_r18_shapes.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='RedNet',
        depth=26,
        stem_channels=32,
        base_channels=32,
        out_indices=(1, 2, 3),
        frozen_stages=-1,
        norm_cfg={{_base_.norm_cfg}},
        norm_eval=False,
        # Kernel generators normalized per image: the generated kernels do not grow with the
        # features, so eval mode (BN running statistics) stays stable (see RedNet's
        # `involution_cfg`). With BN there, this teacher scored 0.046 mAP: images with larger
        # features than average grew quadratically from block to block, to 1e6 in stage 3.
        involution_cfg=dict(norm_cfg=dict(type='GN', num_groups=1)),
        init_cfg=None),  # from scratch: nothing is downloaded
    neck=dict(in_channels=[256, 512, 1024], start_level=0))
