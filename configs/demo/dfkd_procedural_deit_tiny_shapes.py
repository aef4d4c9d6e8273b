# Data-free distillation from procedural images, with no inversion at all: every batch is 8 new
# dead-leaves images (occluding discs of random colours with a scale-invariant size law, the
# statistics of natural images' edges and spectrum; ProceduralSynthesizer), the teacher is run
# on them online and the student learns its features, scores, box regression and detections
# there (the distiller's terms, _base_/models/distiller_r18_deit_tiny.py). No teacher pass is
# spent making images, so the student sees 6400 different images in 800 iterations, where the
# inversion recipes afford 256. The loader only yields image sizes (SyntheticDetDataset); the
# images carry no targets, so the student is taught only through the teacher's outputs.
_base_ = [
    './_base_/models/distiller_r18_deit_tiny.py',
    './_base_/datasets/synthetic_targets.py',
    './_base_/schedules/kd_student_800it.py',
]

# Images of its stored set (tools/generate_synthetic.py, for
# dfkd_images_procedural_deit_tiny_shapes.py): procedural images cost no teacher pass, so the
# set is 4 times the inversion's.
num_synthetic = 1024

# The images are not made for targets: the items carry none.
train_dataloader = dict(dataset=dict(draw_targets=False))
custom_hooks = [
    dict(type='ImageSynthesisHook',
         synthesizer=dict(type='ProceduralSynthesizer', init='dead_leaves'),
         vis_interval=100),
]
