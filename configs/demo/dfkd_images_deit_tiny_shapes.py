# Data-free distillation from stored synthetic images with the teacher run online: the images of
# a bank made once by
#   python tools/generate_synthetic.py configs/demo/dfkd_deit_tiny_shapes.py --num N \
#       --out work_dirs/demo/synthetic_bank
# are read as a COCO dataset (their sampled targets are not used as labels: gt_loss_weight=0 and
# PseudoBoxLoss keeps only the teacher's detections) and augmented (scale, crop, flip) before the
# teacher and the student see them, so every epoch over the bank gives new views and new teacher
# outputs. This costs a teacher forward pass per step, which the stored-output bank
# (dfkd_bank_deit_tiny_shapes.py) saves, and avoids over-fitting a small bank. No real training
# image is read. Same student, terms and schedule as dfkd_deit_tiny_shapes.py.
_base_ = './dfkd_deit_tiny_shapes.py'

custom_hooks = []  # the images exist: nothing is synthesized during training

bank_root = 'work_dirs/demo/synthetic_bank/'
classes = ('rectangle', 'ellipse', 'triangle', 'cross', 'star', 'ring')
img_scale = (128, 128)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomResize', scale=img_scale, ratio_range=(0.8, 1.25), keep_ratio=True),
    dict(type='RandomCrop', crop_size=img_scale, allow_negative_crop=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(
    _delete_=True,
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='CocoDataset', data_root=bank_root, ann_file='targets.json',
                 data_prefix=dict(img='images/'), metainfo=dict(classes=classes),
                 filter_cfg=dict(filter_empty_gt=False), pipeline=train_pipeline))
