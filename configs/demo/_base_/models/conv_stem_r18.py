# A hybrid ViT student for the ResNet-18 demo teacher (../models/retinanet_r18_shapes.py): the
# demo student (./retinanet_deit_tiny_shapes.py) with the teacher's stem and first stage (conv
# 7x7, max pool, two basic blocks: stride 4, 64 channels) in place of shifted patch tokenization;
# its 8 px tokens are 2x2 patches of that map (TimmViT conv_stem, ConvStemPatchEmbed). The stem
# is inherited from the teacher and frozen with its BN statistics (mmdet's frozen_stages=1,
# norm_eval=True). A stem of this form trained from scratch on the synthetic images reached the
# same mAP (README, Quality): the convolutional stem is what helps, inheriting it starts the
# student faster. The stem costs 0.37 GFLOPs at 128 px, so the ViT keeps 4 of the demo
# student's 6 blocks: 2.19 M parameters and 1.51 GFLOPs (0.18x and 0.86x the teacher's), 0.82x
# to 0.93x its CPU latency; with 6 blocks it was 1.78 GFLOPs, more than the teacher's 1.76, and
# taught no better (README, Quality). No `model` key here: the distillers that use it
# (./distiller_r18_deit_tiny_convstem*.py) merge these two values.
conv_stem_student = dict(
    backbone=dict(
        spt=False,
        timm_kwargs=dict(depth=4),
        conv_stem=dict(
            type='ResNet',
            depth=18,
            num_stages=1,
            strides=(1, ),
            dilations=(1, ),
            out_indices=(0, ),
            frozen_stages=1,
            norm_cfg=dict(type='BN', requires_grad=False),
            norm_eval=True,
            init_cfg=None)))
conv_stem_inherit = [
    'bbox_head',
    dict(student='backbone.vit.patch_embed.stem', teacher='backbone'),
]
