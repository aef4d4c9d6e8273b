# ./dfkd_procedural_mosaic_deit_tiny_shapes.py with the involution teacher alone: the same
# dead-leaves images (no teacher pass made them), in mosaics, labelled online by the RedNet-26
# teacher. Against ./dfkd_rednet26_images_mosaic_deit_tiny_shapes.py it tells whether that
# teacher teaches data-free when the images are not inverted from it.
_base_ = [
    './_base_/models/distiller_rednet26_deit_tiny.py',
    './_base_/datasets/synthetic_images_mosaic.py',
    './_base_/schedules/kd_student_800it.py',
]

synthesis_config = 'dfkd_procedural_deit_tiny_shapes.py'
bank_root = 'work_dirs/demo/procedural_bank/'
train_dataloader = dict(dataset=dict(data_root=bank_root))
