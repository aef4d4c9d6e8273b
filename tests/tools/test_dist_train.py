"""tools/dist_train.sh runs data-free distillation on torchrun: two CPU processes (gloo), each
synthesizing its own images; the teachers stay out of DistributedDataParallel, no
find_unused_parameters is needed, and rank 0 writes one checkpoint that holds both ranks'
synthesis and random states. tools/dist_test.sh evaluates a checkpoint on two CPU processes.
Both end with every rank exiting 0 (the process group is destroyed, not left to the
interpreter's exit)."""
import glob
import json
import math
import os
import os.path as osp
import pickle
import socket
import subprocess
import sys

import cv2
import numpy as np
import torch

from mmdfkd.utils import load_checkpoint_file

from conftest import REPO_ROOT, save_random_teacher_checkpoint, write_tiny_teacher_config
from reliability_helpers import IMPORT_ENV, small_dfkd_config, with_helpers


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _torchrun_env() -> dict:
    return {**os.environ, **IMPORT_ENV, 'PORT': str(_free_port()),
            'PATH': osp.dirname(sys.executable) + os.pathsep + os.environ['PATH']}


def test_two_processes_on_cpu(tiny_shapes_root, tmp_path):
    teacher_ckpt = save_random_teacher_checkpoint(str(tmp_path / 'teacher.pth'))
    config = str(tmp_path / 'dfkd.py')
    cfg = small_dfkd_config(tiny_shapes_root, teacher_ckpt, config, max_iters=2,
                            ckpt_interval=2)
    cfg.custom_hooks[0].vis_interval = 2
    with_helpers(cfg, [dict(type='DistributedReportHook')]).dump(config)
    work_dir = str(tmp_path / 'work')

    result = subprocess.run(['bash', 'tools/dist_train.sh', config, '2', '--work-dir', work_dir],
                            cwd=REPO_ROOT, env=_torchrun_env(), capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    for rank in (0, 1):
        with open(osp.join(work_dir, f'ddp_rank{rank}.json')) as f:
            report = json.load(f)
        assert report['world_size'] == 2 and report['wrapper'] == 'MMDistributedDataParallel'
        assert report['find_unused_parameters'] is False
        assert report['teacher_tensors'] > 0 and report['teachers_ignored']
        assert report['teacher_params_synced'] == 0 and report['teachers_frozen']
        assert report['student_params_synced'] > 0

    # Each rank synthesized its own images.
    vis = [cv2.imread(osp.join(work_dir, 'synthetic_vis', name))
           for name in ('iter_2.png', 'iter_2_rank1.png')]
    assert all(image is not None for image in vis)
    assert not np.array_equal(*vis)

    records = [json.loads(line) for path in glob.glob(osp.join(work_dir, '*', 'vis_data',
                                                               'scalars.json'))
               for line in open(path) if line.strip()]
    train = [r for r in records if 'loss' in r]
    assert [r['iter'] for r in train] == [1, 2]
    assert all(math.isfinite(v) for r in train for k, v in r.items()
               if k.startswith(('loss', 'syn_')))

    assert [name for name in os.listdir(work_dir) if '.pth' in name] == ['iter_2.pth']
    ckpt = load_checkpoint_file(osp.join(work_dir, 'iter_2.pth'))
    synthetic, random_state = ckpt['image_synthesis'], ckpt['random_state']
    assert len(synthetic) == len(random_state) == 2  # both ranks, for resuming each its own
    assert not torch.equal(synthetic[0]['rng'], synthetic[1]['rng'])
    buffers = [state['synthesizer']['buffer'] for state in synthetic]
    assert not torch.equal(buffers[0][0]['image'], buffers[1][0]['image'])


def test_dist_test_evaluates_on_two_processes(tiny_shapes_root, tmp_path):
    config = write_tiny_teacher_config(tiny_shapes_root, str(tmp_path / 'teacher.py'))
    checkpoint = save_random_teacher_checkpoint(str(tmp_path / 'teacher.pth'))
    out = str(tmp_path / 'preds.pkl')
    result = subprocess.run(['bash', 'tools/dist_test.sh', config, checkpoint, '2', '--work-dir',
                             str(tmp_path / 'work'), '--out', out],
                            cwd=REPO_ROOT, env=_torchrun_env(), capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert 'coco/bbox_mAP' in result.stdout + result.stderr
    with open(out, 'rb') as f:
        predictions = pickle.load(f)
    # The two ranks' halves of the val split, gathered: each of the 8 images once.
    assert sorted(p['img_id'] for p in predictions) == sorted(set(p['img_id']
                                                                  for p in predictions))
    assert len(predictions) == 8
