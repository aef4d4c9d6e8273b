# Data-free distillation from a stored set of procedural images, none of them inverted: as
# dfkd_images_deit_tiny_shapes.py (augmented views, the teacher run online, its detections the
# student's targets), from a bank of dead-leaves images made without a teacher pass by
#   python tools/generate_synthetic.py configs/demo/dfkd_procedural_deit_tiny_shapes.py \
#       --num 1024 --out work_dirs/demo/procedural_bank
# (`synthesis_config` names that config for benchmarks/quality.py, which makes the bank).
_base_ = [
    './_base_/models/distiller_r18_deit_tiny.py',
    './_base_/datasets/synthetic_images.py',
    './_base_/schedules/kd_student_800it.py',
]

synthesis_config = 'dfkd_procedural_deit_tiny_shapes.py'
bank_root = 'work_dirs/demo/procedural_bank/'
train_dataloader = dict(dataset=dict(data_root=bank_root))
