# Data-free distillation from a stored bank (FKD / LIB-KD style): the synthetic images and the
# teacher's outputs were computed once by
#   python tools/generate_synthetic.py configs/demo/dfkd_deit_tiny_shapes.py --num N \
#       --out work_dirs/demo/synthetic_bank --store-outputs
# so a training step runs neither the image synthesis nor the teacher. Same student, terms and
# schedule as dfkd_deit_tiny_shapes.py (the bank holds the outputs those terms read).
_base_ = './dfkd_deit_tiny_shapes.py'

custom_hooks = []  # the images are in the bank: nothing is synthesized during training

bank_root = 'work_dirs/demo/synthetic_bank/'
classes = ('rectangle', 'ellipse', 'triangle', 'cross', 'star', 'ring')
train_dataloader = dict(
    _delete_=True,
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='SyntheticBankDataset', data_root=bank_root,
                 metainfo=dict(classes=classes)))
