"""The detections term: the teachers' post-NMS detections as targets of the student's own
detection loss."""
from typing import Dict, Sequence

import torch
from mmdet.structures import DetDataSample, SampleList
from mmengine.structures import InstanceData
from torch import Tensor, nn

from mmdfkd.registry import DISTILL_TERMS
from .base import DistillTerm, TermBatch, TermConfig, scale_losses


@DISTILL_TERMS.register_module(name='detections')
class DetectionsTerm(DistillTerm):
    """Trains the student's own head on its teachers' detections (losses with
    ``input_kind='detections'``: ``PseudoBoxLoss``), so it fits any pair of heads.

    The teachers' detections are mapped to the student's labels (the distiller's
    ``class_mapping``; detections of unmapped classes are dropped), turned into one target set
    per image by the loss's ``make_targets`` (fusing several teachers by their weights), and
    the student's ``loss`` is called on them. Its entries are scaled by the loss's
    ``loss_weight`` and logged as ``loss_<name>_<part>`` (``loss_cls`` of the head becomes
    ``loss_<name>_cls``); entries without ``loss`` in their key (e.g. R-CNN's ``acc``) are only
    logged, as ``<name>_<key>``.
    """

    runs_student_loss = True
    unused_reason = ("it trains the student's own head on the teachers' detections and reads "
                     'no sources')

    def __init__(self, config: TermConfig, student: nn.Module,
                 teachers: Sequence[nn.Module]) -> None:
        super().__init__(config, student, teachers)
        self.class_mapping = dict(config.class_mapping)

    @property
    def needs_detections(self) -> bool:
        return True

    def compute(self, batch: TermBatch) -> Dict[str, Tensor]:
        """The student's loss on the pseudo targets, scaled, under this term's keys."""
        losses = batch.student.loss(batch.inputs, self.pseudo_samples(batch))
        return {term_part_key(self.name, key): value
                for key, value in scale_losses(losses, self.loss.loss_weight).items()}

    def pseudo_samples(self, batch: TermBatch) -> SampleList:
        """The batch's data samples with the teachers' detections as ``gt_instances``.

        Returns:
            Per image, a ``DetDataSample`` with the batch sample's metainfo and the targets of
            the loss's ``make_targets`` (``bboxes`` (K, 4) in input pixels, ``labels`` (K,)).
        """
        detections = [[self.map_labels(d) for d in batch.teacher_outputs[t]['detections']]
                      for t in self.teacher_ids]
        targets = self.loss.make_targets(detections,
                                         [batch.teacher_weights[t] for t in self.teacher_ids],
                                         [s.gt_instances for s in batch.data_samples])
        samples = []
        for sample, target in zip(batch.data_samples, targets):
            new = DetDataSample(metainfo=sample.metainfo)
            new.gt_instances = target
            samples.append(new)
        return samples

    def map_labels(self, instances: InstanceData) -> InstanceData:
        """Teacher detections in the student's labels: ``class_mapping`` applied, detections
        of classes it does not map dropped. Unchanged without a mapping."""
        if not self.class_mapping:
            return instances
        labels = instances.labels.tolist()
        keep = torch.tensor([label in self.class_mapping for label in labels], dtype=torch.bool,
                            device=instances.labels.device)
        instances = instances[keep]
        instances.labels = torch.tensor([self.class_mapping[label] for label in
                                         instances.labels.tolist()], dtype=torch.long,
                                        device=keep.device)
        return instances


def term_part_key(name: str, key: str) -> str:
    """The log key of entry ``key`` of a term's loss dict.

    ``loss_cls`` of term ``pseudo_box`` is ``loss_pseudo_box_cls``; an entry without ``loss``
    in its key (only logged, e.g. ``acc``) is ``pseudo_box_acc``.
    """
    if 'loss' not in key:
        return f'{name}_{key}'
    part = key[len('loss_'):] if key.startswith('loss_') else key
    return f'loss_{name}_{part}'

