# Stored synthetic images composed into new scenes: ./synthetic_images.py with half of the views a
# mosaic of four bank images (mmdet's CachedMosaic) shrunk to the input size.
_base_ = './synthetic_images.py'

img_scale = (128, 128)  # the demo's input size (_base_/datasets/shapes.py)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    # A mosaic is twice the input size; the resize below brings it to 0.8-1.2 times the input
    # (objects at 0.4-0.6 of their size) and a single image to 0.8-1.2 times its own size.
    dict(type='CachedMosaic', img_scale=img_scale, prob=0.5, max_cached_images=64,
         pad_val=114.0),
    dict(type='RandomResize', scale=(256, 256), ratio_range=(0.4, 0.6),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=img_scale, allow_negative_crop=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
