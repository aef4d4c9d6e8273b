"""SyntheticBankDataset: a bank's images and targets as a COCO dataset, each sample carrying its
stored teacher outputs in the format of mmdfkd.structures.teacher_outputs."""
import json
import os

import mmcv
import numpy as np
import pytest
import torch
from mmdet.utils import register_all_modules
from mmengine.structures import InstanceData

from mmdfkd.datasets import SyntheticBankDataset
from mmdfkd.structures import OUTPUTS_DIR, make_entries, save_entry

register_all_modules(init_default_scope=True)


def _bank(root, img_id: int = 7) -> dict:
    """A one-image bank; returns the stored entry."""
    os.makedirs(root / 'images')
    os.makedirs(root / OUTPUTS_DIR)
    mmcv.imwrite(np.zeros((32, 48, 3), np.uint8), str(root / 'images' / 'a.png'))
    json.dump(dict(images=[dict(id=img_id, file_name='a.png', height=32, width=48)],
                   annotations=[dict(id=1, image_id=img_id, category_id=1, bbox=[2, 3, 10, 12],
                                     area=120, iscrowd=0)],
                   categories=[dict(id=1, name='box')]), open(root / 'targets.json', 'w'))
    dets = InstanceData(bboxes=torch.tensor([[2., 3., 12., 15.]]), scores=torch.tensor([0.9]),
                        labels=torch.tensor([0]))
    entry = make_entries([({'neck': (torch.randn(1, 4, 4, 6),)}, [dets])])[0]
    save_entry(entry, str(root / OUTPUTS_DIR), img_id)
    return entry


def test_each_sample_carries_its_stored_entry(tmp_path):
    entry = _bank(tmp_path)
    dataset = SyntheticBankDataset(data_root=str(tmp_path), metainfo=dict(classes=('box',)))
    sample = dataset[0]['data_samples']
    stored = sample.teacher_outputs['teacher0']
    torch.testing.assert_close(stored['sources']['neck'][0],
                               entry['teacher0']['sources']['neck'][0])
    torch.testing.assert_close(stored['detections']['bboxes'],
                               torch.tensor([[2., 3., 12., 15.]]))
    assert sample.gt_instances.labels.tolist() == [0]


def test_moving_pipelines_and_a_bank_without_outputs_are_refused(tmp_path):
    _bank(tmp_path)
    with pytest.raises(ValueError, match=r"\['RandomFlip'\] would move pixels"):
        SyntheticBankDataset(data_root=str(tmp_path), pipeline=[dict(type='RandomFlip')])
    with pytest.raises(FileNotFoundError, match='--store-outputs'):
        SyntheticBankDataset(data_root=str(tmp_path / 'nowhere'))
