# Data-free training data from stored synthetic images: the images of a bank made once by
#   python tools/generate_synthetic.py configs/demo/dfkd_deit_tiny_shapes.py --num N \
#       --out work_dirs/demo/synthetic_bank
# read as a COCO dataset and augmented (scale, crop, flip), so every epoch over the bank gives
# new views. No real training image is read; evaluation on the real demo val split
# (./shapes.py).
_base_ = './shapes.py'

bank_root = 'work_dirs/demo/synthetic_bank/'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomResize', scale={{_base_.img_scale}}, ratio_range=(0.8, 1.25),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size={{_base_.img_scale}}, allow_negative_crop=True),
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
                 data_prefix=dict(img='images/'), metainfo={{_base_.metainfo}},
                 filter_cfg=dict(filter_empty_gt=False), pipeline=train_pipeline))
