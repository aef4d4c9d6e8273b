# The demo's distiller (./distiller_r18_deit_tiny.py) for real labelled images: the terms are
# the data-free configs', except that the teacher's detections are merged with the ground truth
# (PseudoBoxLoss keep_gt=True), which takes the place of the student's own detection loss.
_base_ = './distiller_r18_deit_tiny.py'

model = dict(
    distill_losses=[
        dict(type='PKDLoss', student='neck', teacher='neck', loss_weight=2.0),
        dict(type='ClassificationKDLoss', student='bbox_head', teacher='bbox_head',
             mode='sigmoid', temperature=1.0, loss_weight=1.0),
        dict(type='BoxRegressionKDLoss', student='bbox_head', teacher='bbox_head',
             loss_weight=1.0),
        dict(type='PseudoBoxLoss', score_thr=0.5, keep_gt=True, loss_weight=1.0),
    ],
    gt_loss_weight=0.0)  # ground truth is kept inside PseudoBoxLoss (keep_gt=True)
