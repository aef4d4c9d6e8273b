# Data-free distillation: the demo ViT student learns from the demo teacher without any real
# training image. The train dataloader only samples target boxes; ImageSynthesisHook inverts the
# frozen teacher (detection loss toward the targets, BatchNorm statistics, image priors,
# box-moving augmentations, false-positive sampling) to make the images, and the student learns
# from the teacher's features, scores, box regression and detections on them (the distiller's
# terms, _base_/models/distiller_r18_deit_tiny.py). Evaluation uses the real demo val split.
#
# This is also the synthesis config of the demo's stored images (tools/generate_synthetic.py
# reads the hook's synthesizer): dfkd_images_deit_tiny_shapes.py and
# dfkd_bank_deit_tiny_shapes.py train from them with nothing synthesized during training.
_base_ = [
    './_base_/models/distiller_r18_deit_tiny.py',
    './_base_/datasets/synthetic_targets.py',
    './_base_/schedules/kd_student_800it.py',
    './_base_/synthesis/inversion.py',
]

# Synthetic images the demo's bank is made of (tools/run_demo.py, tools/generate_synthetic.py).
num_synthetic = 256

# The synthesizer draws a batch's targets only when it starts images for it: the dataset's
# items carry only the image meta.
train_dataloader = dict(dataset=dict(draw_targets=False))
