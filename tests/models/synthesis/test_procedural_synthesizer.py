"""ProceduralSynthesizer: procedural images without teacher passes, new every batch, with no
targets, reproducible from the random stream; and data-free training on them through
tools/train.py, resumed."""
import os.path as osp

import pytest
import torch
from mmdet.structures import DetDataSample

from conftest import DFKD_CONFIG, run_tool, save_random_teacher_checkpoint, shrink_config
from mmdfkd.models.synthesis import ProceduralSynthesizer
from mmdfkd.models.synthesis.starting_images import dead_leaves
from mmdfkd.utils import load_config
from synthesis_fixtures import targets


class _CountingTeacher(torch.nn.Module):
    """A stand-in teacher that counts its calls (there must be none)."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, *args, **kwargs):
        self.calls += 1


def _samples(num: int, size=(48, 64)):
    return [DetDataSample(metainfo=dict(img_id=i, img_shape=size)) for i in range(num)]


def test_every_batch_is_new_procedural_images_without_targets_or_teacher_passes():
    teacher = _CountingTeacher()
    synthesizer = ProceduralSynthesizer([teacher], [1.0])
    rng = torch.Generator().manual_seed(0)
    state = rng.get_state()
    first = synthesizer.next_batch(_samples(3), rng)
    second = synthesizer.next_batch(_samples(3), rng)
    assert teacher.calls == 0
    assert len(first.images) == 3 and first.images[0].shape == (3, 48, 64)
    assert first.images[0].dtype == torch.uint8
    assert not torch.equal(first.images[0], second.images[0])
    # The images are the procedural model's, drawn from the caller's random stream.
    expected = (dead_leaves(3, 48, 64, torch.Generator().set_state(state)) * 255).round()
    assert torch.equal(torch.stack(first.images), expected.to(torch.uint8))
    assert [len(b) for b in first.targets.boxes] == [0, 0, 0]
    assert [m['img_id'] for m in first.targets.metainfo] == [0, 1, 2]
    assert first.log == {}
    assert synthesizer.state_dict() == {}


def test_a_stored_set_gets_images_of_the_targets_size_and_no_boxes():
    synthesizer = ProceduralSynthesizer([_CountingTeacher()], [1.0], init='spectral')
    batch = synthesizer.synthesize(targets(96), torch.Generator().manual_seed(0))
    assert [tuple(i.shape) for i in batch.images] == [(3, 96, 96)] * 2
    assert [len(b) for b in batch.targets.boxes] == [0, 0]
    assert [m['img_id'] for m in batch.targets.metainfo] == [0, 1]


def test_an_unknown_procedural_model_is_refused():
    with pytest.raises(ValueError, match=r"init must be one of \['dead_leaves', 'noise', "
                                         r"'smooth', 'spectral'\], got 'plasma'"):
        ProceduralSynthesizer([_CountingTeacher()], [1.0], init='plasma')


def test_data_free_training_on_procedural_images_resumes(tiny_shapes_root, tmp_path):
    cfg = shrink_config(load_config(DFKD_CONFIG), tiny_shapes_root)
    cfg.model.teachers[0].checkpoint = save_random_teacher_checkpoint(
        str(tmp_path / 'teacher.pth'))
    cfg.model.student.test_cfg.score_thr = 0.0
    cfg.train_dataloader.dataset.draw_targets = False
    cfg.custom_hooks = [dict(type='ImageSynthesisHook',
                             synthesizer=dict(type='ProceduralSynthesizer'), vis_interval=2)]
    config = str(tmp_path / 'procedural.py')
    cfg.dump(config)
    work_dir = str(tmp_path / 'work')
    first = run_tool(['tools/train.py', config, '--work-dir', work_dir])
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    log = first.stdout + first.stderr
    assert 'loss_PKDLoss_neck' in log and 'loss_ClassificationKDLoss_bbox_head' in log
    assert osp.isfile(osp.join(work_dir, 'synthetic_vis', 'iter_2.png'))
    second = run_tool(['tools/train.py', config, '--work-dir', work_dir, '--resume',
                       '--cfg-options', 'train_cfg.max_iters=6'])
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    log = second.stdout + second.stderr
    assert 'Synthetic images restored: procedural images (dead_leaves), nothing stored' in log
    assert osp.isfile(osp.join(work_dir, 'iter_6.pth'))
