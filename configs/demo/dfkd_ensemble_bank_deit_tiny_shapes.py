# Both teachers, convolution and involution, from a stored bank (FKD / LIB-KD): the images
# inverted from both (./dfkd_ensemble_deit_tiny_shapes.py) are stored with both teachers'
# outputs (`tools/generate_synthetic.py --store-outputs`), so training runs neither teacher:
# a step costs the student alone. The teachers are still built (their configs and checkpoints
# are checked, and the student's head inherits the first one's) but never run.
_base_ = [
    './_base_/models/distiller_r18_rednet26_deit_tiny.py',
    './_base_/datasets/synthetic_bank.py',
    './_base_/schedules/kd_student_800it.py',
]

synthesis_config = 'dfkd_ensemble_deit_tiny_shapes.py'
bank_root = 'work_dirs/demo/synthetic_bank_ensemble/'
train_dataloader = dict(dataset=dict(data_root=bank_root))
