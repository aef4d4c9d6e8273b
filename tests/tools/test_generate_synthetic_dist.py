"""tools/generate_synthetic.py at scale: two processes (tools/dist_generate_synthetic.sh,
torchrun, gloo on the CPU) each write their shard of one bank, equal byte for byte to the bank
of one process; a run killed with SIGKILL is resumed by the same command without redoing its
finished images, and ends with the same bank; a partial run with other settings is refused,
untouched."""
import json
import os
import os.path as osp
import shutil
import subprocess

import pytest

from conftest import REPO_ROOT, run_tool, save_random_teacher_checkpoint
from test_dist_train import _torchrun_env
from test_generate_synthetic import finished_batches, kill_after_first_batch, write_config

# 6 images in batches of 2: three batches, so a killed run has finished some but not all.
ARGS = ['--num', '6', '--batch-size', '2']
IMAGES = [f'{i:07d}.png' for i in range(6)]


@pytest.fixture(scope='module', autouse=True)
def one_thread_per_process():
    """Every run of this module computes with one thread, as torchrun's processes do (it sets
    OMP_NUM_THREADS=1): the banks are compared byte for byte, and sums split over another
    number of threads round differently."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv('OMP_NUM_THREADS', '1')
        yield


@pytest.fixture(scope='module')
def config(tiny_shapes_root, tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp('dist_synthesis')
    teacher_ckpt = save_random_teacher_checkpoint(str(root / 'teacher.pth'))
    return write_config(tiny_shapes_root, teacher_ckpt, str(root / 'dfkd.py'))


@pytest.fixture(scope='module')
def reference(config, tmp_path_factory) -> str:
    """The bank of one uninterrupted process."""
    out = str(tmp_path_factory.mktemp('reference') / 'bank')
    result = run_tool(['tools/generate_synthetic.py', config, *ARGS, '--out', out])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


@pytest.fixture(scope='module')
def killed(config, tmp_path_factory) -> str:
    """The partial folder of a run killed with SIGKILL once its first batch was finished."""
    out = str(tmp_path_factory.mktemp('killed') / 'bank')
    kill_after_first_batch(['tools/generate_synthetic.py', config, *ARGS, '--out', out])
    assert 1 <= len(finished_batches(out)) < 3 and not osp.exists(out)
    return out + '.partial'


def _read(path: str) -> bytes:
    with open(path, 'rb') as f:
        return f.read()


def _snapshot(folder: str) -> dict:
    """Every file under ``folder`` with its inode, modification time and content."""
    snapshot = {}
    for parent, _, files in os.walk(folder):
        for name in files:
            path = osp.join(parent, name)
            stat = os.stat(path)
            snapshot[osp.relpath(path, folder)] = (stat.st_ino, stat.st_mtime_ns, _read(path))
    return snapshot


def _assert_same_bank(out: str, reference: str) -> None:
    assert sorted(os.listdir(out)) == sorted(os.listdir(reference)) == [
        'images', 'summary.json', 'targets.json', 'teacher_predictions.json']
    assert sorted(os.listdir(osp.join(out, 'images'))) == IMAGES
    for name in IMAGES:
        assert _read(osp.join(out, 'images', name)) == _read(
            osp.join(reference, 'images', name)), name
    for name in ('targets.json', 'teacher_predictions.json'):
        with open(osp.join(out, name)) as got, open(osp.join(reference, name)) as expected:
            assert json.load(got) == json.load(expected), name
    assert not osp.exists(out + '.partial')


def test_two_processes_write_the_bank_of_one(config, reference, tmp_path):
    out = str(tmp_path / 'bank')
    result = subprocess.run(['bash', 'tools/dist_generate_synthetic.sh', config, '2', *ARGS,
                             '--out', out], cwd=REPO_ROOT, env=_torchrun_env(),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    _assert_same_bank(out, reference)

    with open(osp.join(out, 'summary.json')) as f:
        summary = json.load(f)
    with open(osp.join(reference, 'summary.json')) as f:
        single = json.load(f)
    assert (summary['processes'], single['processes']) == (2, 1)
    assert summary['images_made'] == summary['num_images'] == 6
    assert summary['images_per_second'] > 0
    assert summary['fidelity'] == single['fidelity']
    # Per image, 5 inversion steps (a forward and a backward pass of the teacher each) and
    # false-positive sampling after steps 2, 3, 4 and 5 (a forward pass each), over both
    # processes.
    assert (summary['teacher_forward_per_image'], summary['teacher_backward_per_image']) == \
        (single['teacher_forward_per_image'], single['teacher_backward_per_image']) == (9, 5)


def test_a_killed_run_resumes_without_redoing_finished_images(config, reference, killed,
                                                              tmp_path):
    out = str(tmp_path / 'bank')
    shutil.copytree(killed, out + '.partial')  # (copytree keeps modification times)
    finished = [image['file_name'] for record in finished_batches(out)
                for image in record['images']]
    before = _snapshot(out + '.partial/images')

    result = run_tool(['tools/generate_synthetic.py', config, *ARGS, '--out', out])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (f'{len(finished)} of 6 images were made by an earlier run and are kept; making '
            f'the other {6 - len(finished)}') in result.stdout
    after = _snapshot(osp.join(out, 'images'))
    for name in finished:  # the same files, not written again
        assert after[name] == before[name], name
    _assert_same_bank(out, reference)
    with open(osp.join(out, 'summary.json')) as f:
        summary = json.load(f)
    assert summary['images_made'] == 6 - len(finished)
    assert (summary['teacher_forward_per_image'], summary['teacher_backward_per_image']) == (9, 5)


def test_a_partial_run_with_other_settings_is_refused_untouched(config, killed, tmp_path):
    out = str(tmp_path / 'bank')
    shutil.copytree(killed, out + '.partial')
    before = _snapshot(out + '.partial')
    result = run_tool(['tools/generate_synthetic.py', config, *ARGS, '--out', out,
                       '--seed', '1', '--store-outputs'])
    assert result.returncode == 1
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith(f'{out}.partial is a run with other settings (seed 0 there, 1 '
                              'now; store_outputs False there, True now), with ')
    assert 'nothing was changed' in message and 'move or remove' in message
    assert f'(tools/generate_synthetic.py {config} --num 6 --batch-size 2 --out ' in message
    assert 'Traceback' not in result.stderr
    assert _snapshot(out + '.partial') == before and not osp.exists(out)


def test_a_teacher_trained_again_at_the_same_path_is_a_run_with_other_settings(tmp_path):
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'generate_synthetic', osp.join(REPO_ROOT, 'tools', 'generate_synthetic.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    from mmengine.config import Config, ConfigDict
    teacher = tmp_path / 'teacher.pth'
    teacher.write_bytes(b'first weights')
    cfg = Config(dict(model=dict(teachers=[dict(checkpoint=str(teacher))]),
                      train_dataloader=dict(dataset=dict(type='SyntheticDetDataset'))))
    hook = ConfigDict(synthesizer=dict(type='InversionSynthesizer'))
    args = type('Args', (), dict(num=4, seed=0, generator_iters=1, store_outputs=False))
    partial = str(tmp_path / 'bank.partial')
    tool._start_partial(partial, tool._manifest(args, cfg, hook, 2), ['generate'])
    assert tool._partial_problem(partial, tool._manifest(args, cfg, hook, 2)) is None
    teacher.write_bytes(b'other weights')
    problem = tool._partial_problem(partial, tool._manifest(args, cfg, hook, 2))
    assert "(a teacher checkpoint's content differs), with 0 finished batch(es)" in problem
