"""Bookkeeping shared by the benchmarks that train on ``make demo``'s outputs: whether those
inputs exist, which stored results still hold, and the machine they were measured on."""
import argparse
import contextlib
import fcntl
import json
import os
import os.path as osp
import time
from typing import Any, Callable, Dict, Iterator, Mapping

import torch

from .experiment import REPO_ROOT, file_fingerprint


def check_demo_inputs(teacher_checkpoint: str, data_root: str, bank: str) -> None:
    """Checks that what ``make demo`` makes is there before anything trains.

    Args:
        teacher_checkpoint: The demo teacher's checkpoint.
        data_root: The demo data (COCO layout).
        bank: The synthetic bank; its ``summary.json`` is written last, once the bank is
            complete.

    Raises:
        FileNotFoundError: If any of them is missing; the message names each missing file,
            the flag that points elsewhere, and says to run ``make demo`` first.
    """
    inputs = ((teacher_checkpoint, 'teacher checkpoint', '--teacher-checkpoint'),
              (osp.join(data_root, 'annotations', 'instances_val.json'),
               'demo val annotations', '--data-root'),
              (osp.join(bank, 'summary.json'), 'summary of the synthetic bank', '--bank'))
    missing = [f'the {what} {path} does not exist ({flag})'
               for path, what, flag in inputs if not osp.isfile(path)]
    if missing:
        raise FileNotFoundError('; '.join(missing) + '. Run `make demo` first (it makes the '
                                'demo data, trains the teacher and synthesizes the bank), or '
                                'point the flags in parentheses at existing ones.')


def kept_entries(path: str, settings: Dict[str, Any], config_sha: str,
                 field: str) -> Dict[str, Any]:
    """The entries of a previous results file that still hold: the file was made with the same
    ``settings`` (every key of it), and the entry (of ``results[field]``) with a config of hash
    ``config_sha``; none if the file does not exist."""
    if not osp.isfile(path):
        return {}
    with open(path) as f:
        previous = json.load(f)
    if any(previous.get(key) != value for key, value in settings.items()):
        return {}
    return {key: entry for key, entry in previous[field].items()
            if entry.get('config_sha') == config_sha}


@contextlib.contextmanager
def results_lock(path: str) -> Iterator[None]:
    """Holds an exclusive lock on the results file ``path`` (a ``.lock`` file next to it), so
    that reading what other runs stored there and writing it back is one step."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path + '.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def save_merged(results: Dict[str, Any], path: str, config_sha: str, field: str,
                write: Callable[[Dict[str, Any]], None]) -> None:
    """Adds to ``results[field]`` the entries another run of the same benchmark stored in
    ``path`` since this one read it (those of :func:`kept_entries` this run does not hold),
    then writes the results with ``write``, under :func:`results_lock`: two commands measuring
    different entries at the same time keep each other's entries."""
    settings = {key: value for key, value in results.items() if key != field}
    with results_lock(path):
        for key, entry in kept_entries(path, settings, config_sha, field).items():
            results[field].setdefault(key, entry)
        write(results)


def measure_missing(name: str, path: str, settings: Dict[str, Any], config_sha: str,
                    field: str, jobs: Mapping[str, str], run: Callable[[str], Dict[str, Any]],
                    write: Callable[[Dict[str, Any]], None], force: bool = False) -> None:
    """Measures the entries of ``jobs`` (key -> label) that the results file ``path`` does not
    hold yet (:func:`kept_entries`; all of them with ``force``) with ``run(key)``, and writes
    the results with ``write`` after each (:func:`save_merged`: an interrupted command keeps
    them, and a command measuring other entries at the same time keeps its own); writes them
    once if nothing was left to measure. ``name`` labels the progress lines."""
    results: Dict[str, Any] = dict(
        settings, **{field: {} if force else kept_entries(path, settings, config_sha, field)})
    todo = [key for key in jobs if key not in results[field]]
    for key in todo:
        print(f'\n===== [{name} {time.strftime("%H:%M:%S")}] {jobs[key]} =====', flush=True)
        results[field][key] = run(key)
        save_merged(results, path, config_sha, field, write)
    if not todo:
        print(f'[{name}] every run asked for is measured already (--force reruns them)')
        write(results)


def machine() -> str:
    """The machine in words: CPU cores, the GPU training runs on if there is one, torch."""
    gpu = f', {torch.cuda.get_device_name()}' if torch.cuda.is_available() else ''
    return f'{os.cpu_count()} CPU cores{gpu}, torch {torch.__version__}'


def add_demo_arguments(parser: argparse.ArgumentParser, work_dir: str) -> None:
    """Adds the options of a benchmark that trains on ``make demo``'s outputs: ``--seed``,
    ``--data-root``, ``--teacher-checkpoint``, ``--bank``, ``--work-dir`` (default
    ``work_dir``), ``--out-dir`` and ``--force``."""
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--data-root', default='data/demo', help='demo data (make demo)')
    parser.add_argument('--teacher-checkpoint', default='work_dirs/demo/teacher/iter_1500.pth',
                        help='the demo teacher (make demo trains it)')
    parser.add_argument('--bank', default='work_dirs/demo/synthetic_bank',
                        help='stored synthetic images (make demo synthesizes them)')
    parser.add_argument('--work-dir', default=work_dir, help='where the runs train')
    parser.add_argument('--out-dir', default=osp.join(REPO_ROOT, 'benchmarks', 'results'))
    parser.add_argument('--force', action='store_true', help='rerun runs already measured')


def demo_input_settings(args: argparse.Namespace) -> Dict[str, Any]:
    """The settings of :func:`add_demo_arguments` a stored result depends on: data, bank and
    teacher (the bank and the teacher also by the hash of their file: a bank remade by
    ``make demo`` has a new ``summary.json``) and the seed."""
    return dict(data_root=args.data_root, bank=args.bank,
                bank_sha=file_fingerprint(osp.join(args.bank, 'summary.json')),
                teacher_checkpoint=args.teacher_checkpoint,
                teacher_sha=file_fingerprint(args.teacher_checkpoint), seed=args.seed)
