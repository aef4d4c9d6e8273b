# A demo teacher trained the way mmdet trains its detectors (mmdet's retinanet_r50_fpn.py): a
# ResNet-18 backbone pretrained on another data set, its BatchNorm frozen (`norm_eval=True`),
# no norm layer in FPN and head. The pretraining data set is the demo's proxy for ImageNet,
# procedural textures (tools/pretrain_backbone.py writes the checkpoint), so the frozen BN
# statistics describe textures, not the shapes the detector is trained on: the situation of a
# user's COCO teacher, whose BN statistics are ImageNet's. The data-free tools see this
# (`describe_bn_prior` reports 'frozen') and leave the BN prior off unless `frozen_bn_prior=True`.
#
# Classes, head shapes (128 channels, 2 stacked convs), anchors and FPN levels (strides 8, 16
# and 32) are those of the demo teacher (./retinanet_r18_shapes.py), so the demo student's
# distillation terms apply to this teacher too.
_base_ = ['mmdet::_base_/models/retinanet_r50_fpn.py', 'mmdet::retinanet/retinanet_tta.py']

# Written by `python tools/pretrain_backbone.py` (its default --out).
proxy_backbone = 'work_dirs/demo/proxy_backbone/resnet18_textures.pth'
model = dict(
    backbone=dict(
        depth=18,
        # mmdet's stock settings: the stem and first stage stay as pretrained, BN keeps the
        # pretraining statistics (eval mode inside train()) while its affine weights of
        # stages 2 to 4 still learn (requires_grad=True).
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,
        # The checkpoint has mmdet ResNet keys, like torchvision's ImageNet weights: no prefix.
        init_cfg=dict(type='Pretrained', checkpoint=proxy_backbone)),
    neck=dict(  # no norm_cfg: FPN without normalization, as in mmdet's RetinaNet
        in_channels=[64, 128, 256, 512],
        out_channels=128,
        start_level=1,
        add_extra_convs=False,
        num_outs=3),
    bbox_head=dict(  # no norm_cfg: plain convolutions with bias, as in mmdet's RetinaNet
        num_classes=6,  # the classes of ../datasets/shapes.py
        in_channels=128,
        feat_channels=128,
        stacked_convs=2,
        anchor_generator=dict(octave_base_scale=2, strides=[8, 16, 32])),
    test_cfg=dict(score_thr=0.05, max_per_img=100))
