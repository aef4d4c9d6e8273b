# Data-free training data: the train dataloader only samples target boxes (SyntheticDetDataset:
# no file is read, the images are placeholders), and a synthesis hook in the config that uses
# this file makes the images. Evaluation on the real demo val split (./shapes.py).
_base_ = './shapes.py'

train_dataloader = dict(
    _delete_=True,
    batch_size=8,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='SyntheticDetDataset',
        num_images=100000,
        img_size=(128, 128),
        metainfo={{_base_.metainfo}},
        sampler=dict(type='BoxTargetSampler', boxes_per_image=(1, 3),
                     size_range=(0.12, 0.55), max_overlap=0.3)))
