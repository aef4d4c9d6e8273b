# ./dfkd_procedural_mosaic_deit_tiny_shapes.py with both teachers, convolution and involution
# (_base_/models/distiller_r18_rednet26_deit_tiny.py, weights 0.5 each): the dead-leaves images
# (no teacher pass made them), in mosaics, labelled online by both teachers. Against
# ./dfkd_ensemble_images_mosaic_deit_tiny_shapes.py: the two teachers without the involution
# teacher's inverted images.
_base_ = [
    './_base_/models/distiller_r18_rednet26_deit_tiny.py',
    './_base_/datasets/synthetic_images_mosaic.py',
    './_base_/schedules/kd_student_800it.py',
]

synthesis_config = 'dfkd_procedural_deit_tiny_shapes.py'
bank_root = 'work_dirs/demo/procedural_bank/'
train_dataloader = dict(dataset=dict(data_root=bank_root))
