"""A stored synthetic set with its teachers' outputs, as training data (FKD / LIB-KD style)."""
import os.path as osp
from typing import Any, Sequence

from mmdet.datasets import CocoDataset
from mmdet.registry import DATASETS

from mmdfkd.structures import OUTPUTS_DIR, load_entry

# Transforms that move pixels: the stored teacher outputs would no longer match the image.
_GEOMETRIC = ('RandomFlip', 'RandomResize', 'RandomCrop', 'RandomAffine', 'RandomShift',
              'RandomCenterCropPad', 'MinIoURandomCrop', 'Expand', 'Mosaic', 'MixUp',
              'CachedMosaic', 'CachedMixUp', 'RandomChoiceResize', 'Resize')


@DATASETS.register_module()
class SyntheticBankDataset(CocoDataset):
    """Training data from a bank written by ``tools/generate_synthetic.py --store-outputs``.

    Images and targets are read as a COCO dataset (``images/``, ``targets.json``). Each
    sample also carries ``teacher_outputs``: per teacher, its fp16 outputs for the sources the
    distillation terms read and its detections (the entry format of
    :mod:`mmdfkd.structures.teacher_outputs`). ``DetectionDistiller`` uses them instead of
    running the teachers, so a training step costs the student alone.

    The pipeline must not move pixels (no flip, resize or crop), since the stored outputs
    belong to the stored image.

    Args:
        data_root: The bank directory.
        ann_file: Targets file, relative to ``data_root``. Defaults to ``'targets.json'``.
        data_prefix: Image folder. Defaults to ``dict(img='images/')``.
        outputs_dir: Folder of the stored outputs, relative to ``data_root``. Defaults to
            ``OUTPUTS_DIR`` (``'teacher_outputs/'``).
        pipeline: Transforms; defaults to loading the image and targets and packing them.
        **kwargs: Other ``CocoDataset`` arguments (``metainfo`` with the classes, ...).

    Raises:
        ValueError: If the pipeline moves pixels.
        FileNotFoundError: If the bank has no stored outputs.
    """

    def __init__(self,
                 data_root: str,
                 ann_file: str = 'targets.json',
                 data_prefix: dict = dict(img='images/'),
                 outputs_dir: str = OUTPUTS_DIR,
                 pipeline: Sequence[dict] = (dict(type='LoadImageFromFile'),
                                             dict(type='LoadAnnotations', with_bbox=True),
                                             dict(type='PackDetInputs')),
                 **kwargs) -> None:
        moving = [t['type'] for t in pipeline if isinstance(t, dict) and t.get('type') in
                  _GEOMETRIC]
        if moving:
            raise ValueError(f'SyntheticBankDataset: {moving} would move pixels away from the '
                             'stored teacher outputs; remove them from the pipeline (the bank '
                             'images already have the training size).')
        self.outputs_dir = osp.join(data_root, outputs_dir)
        if not osp.isdir(self.outputs_dir):
            raise FileNotFoundError(
                f'{self.outputs_dir} does not exist: the bank holds no teacher outputs. Write '
                'it with tools/generate_synthetic.py CONFIG --num N --out DIR --store-outputs.')
        super().__init__(data_root=data_root, ann_file=ann_file, data_prefix=data_prefix,
                         pipeline=list(pipeline), **kwargs)

    def prepare_data(self, idx: int) -> Any:
        """The packed sample of ``idx`` with its stored ``teacher_outputs``.

        Raises:
            CheckpointFileError: If the image's entry is missing, truncated or damaged.
        """
        data = super().prepare_data(idx)
        data['data_samples'].teacher_outputs = load_entry(
            self.outputs_dir, self.get_data_info(idx)['img_id'])
        return data
