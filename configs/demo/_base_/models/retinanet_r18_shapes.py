# The demo teacher's detector: mmdet's RetinaNet with a ResNet-18 backbone, for the six classes
# of ../datasets/shapes.py at 128 px (FPN levels at strides 8, 16 and 32, 128 channels).
#
# BatchNorm is trained everywhere (backbone, FPN and head, `norm_eval=False`), so the teacher's
# running statistics describe its training images. Data-free inversion matches those statistics;
# mmdet's stock RetinaNet keeps frozen ImageNet BN in the backbone and no norm in FPN and head.
# mmdet's RetinaNet test-time augmentation settings (retinanet_tta.py) come with the model, as
# in mmdet's own RetinaNet configs.
_base_ = ['mmdet::_base_/models/retinanet_r50_fpn.py', 'mmdet::retinanet/retinanet_tta.py']

norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    backbone=dict(
        depth=18,
        frozen_stages=-1,
        norm_cfg=norm_cfg,
        norm_eval=False,
        init_cfg=None),  # from scratch: nothing is downloaded
    neck=dict(
        in_channels=[64, 128, 256, 512],
        out_channels=128,
        start_level=1,
        add_extra_convs=False,
        num_outs=3,
        norm_cfg=norm_cfg),
    bbox_head=dict(
        num_classes=6,  # the classes of ../datasets/shapes.py (checked by the tests)
        in_channels=128,
        feat_channels=128,
        stacked_convs=2,
        norm_cfg=norm_cfg,
        anchor_generator=dict(octave_base_scale=2, strides=[8, 16, 32])),
    test_cfg=dict(score_thr=0.05, max_per_img=100))
