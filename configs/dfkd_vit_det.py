# Data-free distillation on COCO: mmdet's RetinaNet-R50-FPN 1x (36.5 box AP) teaches a DeiT-Tiny
# RetinaNet student (TimmViT + SimpleFeaturePyramid, GroupNorm in neck and head,
# configs/students/retinanet_deit_tiny_sfp_coco.py) without any COCO training image.
#
#   python tools/train.py configs/dfkd_vit_det.py                 # one GPU
#   tools/dist_train.sh configs/dfkd_vit_det.py 8                 # the batch the recipe assumes
#
# Files (see configs/README.md): the teacher checkpoint from mmdet's model zoo,
#   https://download.openmmlab.com/mmdetection/v2.0/retinanet/retinanet_r50_fpn_1x_coco/retinanet_r50_fpn_1x_coco_20200130-c2398f9e.pth
# saved at `teacher_checkpoint` below, and, for evaluation only, COCO val2017 under `data_root`:
#   http://images.cocodataset.org/zips/val2017.zip                         (data/coco/val2017/)
#   http://images.cocodataset.org/annotations/annotations_trainval2017.zip (data/coco/annotations/)
# tools/train.py and tools/test.py check both before building anything. Edit the two paths
# here, or override the keys they were copied to (mmengine substitutes a variable when it parses
# the file that uses it, before --cfg-options apply and before an inheriting config is read, so
# `--cfg-options teacher_checkpoint=...` or `teacher_checkpoint = ...` in a config inheriting
# this one would change nothing; dfkd_vit_det_faster_rcnn.py lists its teacher again):
#   --cfg-options model.teachers.0.checkpoint=PATH \
#       val_dataloader.dataset.data_root=DIR/ \
#       val_evaluator.ann_file=DIR/annotations/instances_val2017.json
# (tools/test.py: test_dataloader.dataset.data_root and test_evaluator.ann_file).
#
# Training reads no image: the train dataloader samples target boxes (SyntheticDetDataset,
# DIODE's "onebox" targets) and ImageSynthesisHook inverts the frozen teacher to
# synthesize each batch. The student learns from the teacher's FPN features (PKD, levels matched
# by stride, 1x1 adapters 128 -> 256 channels), its per-anchor class scores
# (ClassificationKDLoss: both heads are RetinaNet heads with the same anchors and 80 classes)
# and its confident detections (PseudoBoxLoss, sampled targets kept). No COCO AP of this recipe
# has been measured yet.
_base_ = ['./students/retinanet_deit_tiny_sfp_coco.py']

teacher_checkpoint = 'checkpoints/retinanet_r50_fpn_1x_coco_20200130-c2398f9e.pth'
teacher_checkpoint_url = (
    'https://download.openmmlab.com/mmdetection/v2.0/retinanet/retinanet_r50_fpn_1x_coco/'
    'retinanet_r50_fpn_1x_coco_20200130-c2398f9e.pth')
data_root = 'data/coco/'

# The 80 COCO classes in mmdet's CocoDataset order (the teacher's label order).
coco_classes = (
    'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train', 'truck', 'boat',
    'traffic light', 'fire hydrant', 'stop sign', 'parking meter', 'bench', 'bird', 'cat', 'dog',
    'horse', 'sheep', 'cow', 'elephant', 'bear', 'zebra', 'giraffe', 'backpack', 'umbrella',
    'handbag', 'tie', 'suitcase', 'frisbee', 'skis', 'snowboard', 'sports ball', 'kite',
    'baseball bat', 'baseball glove', 'skateboard', 'surfboard', 'tennis racket', 'bottle',
    'wine glass', 'cup', 'fork', 'knife', 'spoon', 'bowl', 'banana', 'apple', 'sandwich',
    'orange', 'broccoli', 'carrot', 'hot dog', 'pizza', 'donut', 'cake', 'chair', 'couch',
    'potted plant', 'bed', 'dining table', 'toilet', 'tv', 'laptop', 'mouse', 'remote',
    'keyboard', 'cell phone', 'microwave', 'oven', 'toaster', 'sink', 'refrigerator', 'book',
    'clock', 'vase', 'scissors', 'teddy bear', 'hair drier', 'toothbrush')

student = {{_base_.model}}
model = dict(
    _delete_=True,
    type='DetectionDistiller',
    student=student,
    # The teacher config comes from mmdet itself; building it downloads nothing (its backbone
    # init_cfg is never run: the checkpoint is loaded instead).
    teachers=[
        dict(config='mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
             checkpoint=teacher_checkpoint,
             checkpoint_url=teacher_checkpoint_url)
    ],
    distill_losses=[
        dict(type='PKDLoss', student='neck', teacher='neck', loss_weight=2.0),
        dict(type='ClassificationKDLoss', student='bbox_head', teacher='bbox_head',
             mode='sigmoid', temperature=1.0, loss_weight=1.0),
        dict(type='PseudoBoxLoss', score_thr=0.5, keep_gt=True, loss_weight=1.0),
    ],
    gt_loss_weight=0.0)  # the sampled targets are kept inside PseudoBoxLoss (keep_gt=True)

# ------------------------------------------------------------------------------- synthesis
# DIODE (NVlabs/DIODE, scripts/runner_yolo_multiscale.sh) inverts 128 images at a time: 2500
# Adam steps (lr 0.2, cosine) at 160x160, then 1500 at 320x320, with roll jitter, flips,
# brightness N(0, 0.2) and contrast 1 + N(0, 0.1), false-positive sampling from step 800
# (IoU < 0.35, area in (0.01, 0.85)). Here: 16 images per GPU (x 8 GPUs = DIODE's 128),
# 320x320, DIODE's two resolutions in DIODE's proportion (1250 of 2000 steps at 160x160), lr 0.2,
# and the same augmentations and FP gates, at half DIODE's step count, because synthesis runs
# online, amortized over training: 20 refinement steps per student iteration, so a cohort
# finishes every 100 iterations; over 90k iterations 8 GPUs make 90k / 100 x 128 = 115k images,
# about the size of DIODE's 120k-image onebox set.
#
# The loss weights are not DIODE's numbers: DIODE's 0.5 x task loss, 0.1 x BN distance per layer
# (+2.0 on the first BN) and 75 x TV-L1 balance a YOLOv3 loss whose gains (cls 37.4, obj 64.3,
# giou 3.54) make it tens of times larger than RetinaNet's focal + L1 loss. Taken literally the
# priors would swamp the detection loss. The BN and TV weights are the ones measured on the
# demo's RetinaNet teacher (same loss family; see README, "Measured so far"); the first BN
# layer keeps DIODE's emphasis (0.1 + 2.0 = 21x a layer).
#
# The BN prior: the zoo teacher's backbone BN is frozen at its ImageNet statistics
# (norm_eval=True; FPN and head have no norm), so the prior pulls images towards ImageNet
# statistics, not COCO's. That is a valid natural-image prior (DIODE's and DeepInversion's
# images are shaped by it too), so it is kept on: frozen_bn_prior=True. The log says so.
img_size = (320, 320)
custom_hooks = [
    dict(
        type='ImageSynthesisHook',
        synthesizer=dict(
            type='InversionSynthesizer',
            loss=dict(
                det_weight=1.0,
                bn_weight=0.05,
                bn_first_multiplier=21.,
                frozen_bn_prior=True,
                tv_l1_weight=0.05,
                tv_l2_weight=0.,
                l2_weight=0.,
                augment=dict(jitter=32, flip=True, brightness=0.2, contrast=0.1),
                # The competition term (adaptive DeepInversion) costs a student forward and
                # backward per step; it is off until measured.
                adi_weight=0.0),
            total_steps=2000,
            lr=0.2,
            lowres_steps=1250,
            lowres_scale=0.5,
            fp_sampling=dict(start=640, interval=100, score_thr=0.3, iou_thr=0.35,
                             area_range=(0.01, 0.85)),
            steps_per_iter=20,
            buffer_size=256,
            initial_cohorts=4),
        vis_interval=1000),
]

# ------------------------------------------------------------------------------------ data
# Targets only: no file is read. DIODE's onebox targets (one box per image, side in
# [0.2, 0.8] of the image, uniform class); false-positive sampling adds more boxes.
train_dataloader = dict(
    _delete_=True,
    batch_size=16,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='SyntheticDetDataset',
        num_images=10000000,
        img_size=img_size,
        metainfo=dict(classes=coco_classes),
        sampler=dict(type='BoxTargetSampler', boxes_per_image=1, size_range=(0.2, 0.8)),
        # The synthesizer draws a batch's targets itself when it starts a cohort (every 100
        # iterations); the items carry only the image meta.
        draw_targets=False))

# Evaluation on COCO val2017 with CocoMetric, at mmdet's test scale (1333x800), so the student's
# AP compares with the teacher's 36.5.
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = dict(dataset=dict(data_root=data_root))
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')

# -------------------------------------------------------------------------------- schedule
# The student's AdamW with layer-wise lr decay (from its config), for 90k iterations
# (mmdet's 1x length), warm-up then cosine. lr 1e-4 is for 8 GPUs x 16 images; --auto-scale-lr
# rescales it for another total batch.
max_iters = 90000
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=10000)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=1000, end=max_iters, eta_min=1e-6),
]
auto_scale_lr = dict(enable=False, base_batch_size=128)
# Checkpoints are written atomically (backend_args of the student config).
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(by_epoch=False, interval=10000, max_keep_ckpts=3))
log_processor = dict(by_epoch=False)
