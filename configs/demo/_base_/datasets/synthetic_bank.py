# Data-free training data from a stored bank (FKD / LIB-KD style): the synthetic images and the
# teacher's outputs computed once by
#   python tools/generate_synthetic.py configs/demo/dfkd_deit_tiny_shapes.py --num N \
#       --out work_dirs/demo/synthetic_bank --store-outputs
# so a training step runs neither the synthesis nor the teacher (SyntheticBankDataset gives the
# stored outputs to the distiller's terms). Evaluation on the real demo val split (./shapes.py).
_base_ = './shapes.py'

bank_root = 'work_dirs/demo/synthetic_bank/'
train_dataloader = dict(
    _delete_=True,
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='SyntheticBankDataset', data_root=bank_root,
                 metainfo={{_base_.metainfo}}))
