# Stored synthetic images in mosaics (./synthetic_images_mosaic.py) with their colours
# randomized: mmdet's PhotoMetricDistortion (brightness, contrast, saturation, hue, channel
# order) on every view, after the geometric augmentations. Domain randomization: the student
# sees the synthetic content under many colour statistics, so the real images' would be one
# more variation rather than a new domain. The teacher relabels each distorted view.
_base_ = './synthetic_images_mosaic.py'

img_scale = (128, 128)  # the demo's input size (./shapes.py)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='CachedMosaic', img_scale=img_scale, prob=0.5, max_cached_images=64,
         pad_val=114.0),
    dict(type='RandomResize', scale=(256, 256), ratio_range=(0.4, 0.6),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=img_scale, allow_negative_crop=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
