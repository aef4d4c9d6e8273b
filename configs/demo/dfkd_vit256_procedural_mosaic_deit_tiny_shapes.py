# ./dfkd_procedural_mosaic_deit_tiny_shapes.py with the ViT teacher alone
# (_base_/models/distiller_vit256_deit_tiny.py): the dead-leaves images (no teacher pass made
# them), in mosaics, labelled online by the ViT teacher. Against
# ./dfkd_vit256_images_mosaic_deit_tiny_shapes.py: that teacher without its inverted images.
_base_ = [
    './_base_/models/distiller_vit256_deit_tiny.py',
    './_base_/datasets/synthetic_images_mosaic.py',
    './_base_/schedules/kd_student_800it.py',
]

synthesis_config = 'dfkd_procedural_deit_tiny_shapes.py'
bank_root = 'work_dirs/demo/procedural_bank/'
train_dataloader = dict(dataset=dict(data_root=bank_root))
