"""A data-free run killed with SIGKILL mid-training and resumed with --resume computes the same
losses as an uninterrupted run (deterministic CPU mode): student, optimizer, scheduler, the
synthetic image buffer, the cohort in progress (recomputed from its targets and random states,
not stored as pixels) and the random state are all restored."""
import glob
import json
import os.path as osp
import signal

import pytest

from conftest import DFKD_CONFIG, run_tool, save_random_teacher_checkpoint, shrink_config
from reliability_helpers import IMPORT_ENV, with_helpers


def _train_records(work_dir: str) -> dict:
    """Per training iteration, the logged losses and synthesis terms, over all runs of the
    work dir (a resumed run logs into a new timestamped folder)."""
    records = {}
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            for record in map(json.loads, filter(str.strip, f)):
                if 'loss' in record:
                    records[record['iter']] = {k: v for k, v in record.items()
                                               if k.startswith(('loss', 'syn_'))}
    return records


def _config(data_root: str, teacher_ckpt: str):
    """The demo data-free config at 64 px, 4 iterations, a checkpoint every 2, no validation;
    cohorts of 3 inversion steps (1 at half size, FP sampling from step 2), 1 step per
    iteration, so that the checkpoint holds a cohort in progress. The competition term is off:
    it depends on the student of every step, which a resumed run cannot replay."""
    from mmdfkd.utils import load_config
    cfg = shrink_config(load_config(DFKD_CONFIG), data_root, img_size=64)
    cfg.model.teachers[0].checkpoint = teacher_ckpt
    cfg.model.student.test_cfg.score_thr = 0.0
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.train_dataloader.dataset.draw_targets = False
    cfg.randomness = dict(seed=0, deterministic=True)
    cfg.custom_hooks = [dict(
        type='ImageSynthesisHook',
        synthesizer=dict(type='InversionSynthesizer', total_steps=3, lowres_steps=1,
                         fp_sampling=dict(start=2, interval=1, score_thr=0.5),
                         steps_per_iter=1, buffer_size=4, initial_cohorts=1))]
    return cfg


def test_killed_and_resumed_run_matches_an_uninterrupted_one(tiny_shapes_root, tmp_path):
    teacher_ckpt = save_random_teacher_checkpoint(str(tmp_path / 'teacher.pth'))
    cfg = _config(tiny_shapes_root, teacher_ckpt)
    cfg.dump(str(tmp_path / 'dfkd.py'))
    # The same run, killed before its third iteration, after the checkpoint of the second.
    with_helpers(cfg, [dict(type='KillAtIterHook', iteration=2)]).dump(
        str(tmp_path / 'dfkd_killed.py'))

    straight = run_tool(['tools/train.py', str(tmp_path / 'dfkd.py'), '--work-dir',
                         str(tmp_path / 'straight')])
    assert straight.returncode == 0, straight.stdout[-3000:] + straight.stderr[-3000:]

    work_dir = str(tmp_path / 'interrupted')
    killed = run_tool(['tools/train.py', str(tmp_path / 'dfkd_killed.py'), '--work-dir',
                       work_dir], env=IMPORT_ENV)
    assert killed.returncode == -signal.SIGKILL, killed.stdout[-3000:] + killed.stderr[-3000:]
    assert sorted(_train_records(work_dir)) == [1, 2]
    resumed = run_tool(['tools/train.py', str(tmp_path / 'dfkd.py'), '--work-dir', work_dir,
                        '--resume'])
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    log = resumed.stdout + resumed.stderr
    assert 'resumed epoch: 0, iter: 2' in log
    assert 'Synthetic images restored: 2 in the buffer, cohort at step 2' in log

    expected, got = _train_records(str(tmp_path / 'straight')), _train_records(work_dir)
    assert sorted(expected) == sorted(got) == [1, 2, 3, 4]
    for iteration in (3, 4):
        assert expected[iteration].keys() == got[iteration].keys()
        assert {'loss', 'syn_det_t0', 'syn_bn_t0'} <= got[iteration].keys()
        assert any(k.startswith('loss_') for k in got[iteration])
        for key, value in expected[iteration].items():
            assert got[iteration][key] == pytest.approx(value, rel=1e-5, abs=1e-6), \
                (iteration, key)
