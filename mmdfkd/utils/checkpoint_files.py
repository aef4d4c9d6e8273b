"""Checkpoint files on disk: written atomically, checked before a run resumes from them.

mmengine 0.10.7 writes a checkpoint by opening the final path and writing the bytes into it, so a
run killed while saving leaves a truncated file under the name of a good one, and ``--resume``
then fails on it. :func:`install_atomic_checkpoint_save` (called when :mod:`mmdfkd` is imported)
replaces mmengine's ``save_checkpoint`` with :func:`atomic_save_checkpoint`, which writes the
bytes to ``PATH.tmp`` in the same directory, flushes them to disk and renames the file over
``PATH`` (``os.replace``, atomic on POSIX and Windows). A kill at any point leaves either the
previous file or the new one, never a mix; at worst a stale ``PATH.tmp``, which the next save
overwrites. Only local paths take this route; other storage backends keep mmengine's own code.

mmengine's ``CheckpointHook`` also writes the ``last_checkpoint`` pointer file directly.
:func:`find_resumable_checkpoint` therefore does not trust it blindly: it checks the file it
names and otherwise falls back to the newest readable checkpoint of the work dir. The hook also
deletes the oldest checkpoint beyond ``max_keep_ckpts`` *before* it writes the new one, so with
``max_keep_ckpts=1`` a run killed while saving has no checkpoint left; keep 2 or more (or -1,
all) where runs may be killed.
"""
import os
import os.path as osp
import pickle
import re
import zipfile
from typing import Callable, List, Optional, Tuple

import mmengine.runner
import mmengine.runner.checkpoint
import mmengine.runner.runner
import torch
from mmengine.fileio import LocalBackend, get_file_backend

# mmengine's names of the function, by module: the Runner and the hooks import it from these.
_SAVE_CHECKPOINT_MODULES = (mmengine.runner.checkpoint, mmengine.runner.runner, mmengine.runner)
_MMENGINE_SAVE_CHECKPOINT: Callable = mmengine.runner.checkpoint.save_checkpoint
# Checkpoint names of mmengine's CheckpointHook (filename_tmpl 'iter_{}.pth' / 'epoch_{}.pth').
_STEP_CHECKPOINT = re.compile(r'^(?:iter|epoch)_(\d+)\.pth$')


def atomic_save_checkpoint(checkpoint: dict,
                           filename: str,
                           file_client_args: Optional[dict] = None,
                           backend_args: Optional[dict] = None) -> None:
    """``mmengine.runner.save_checkpoint`` that replaces a local file atomically.

    The checkpoint is serialized into ``filename + '.tmp'`` next to the target, flushed and
    fsynced, then renamed over ``filename``; the directory entry is fsynced too. If anything
    fails before the rename, the temporary file is removed and ``filename`` is as it was.

    Args:
        checkpoint: The checkpoint dict.
        filename: Where to save it.
        file_client_args: Deprecated mmengine argument; if given, mmengine's own save is used.
        backend_args: mmengine storage backend arguments; a non-local backend (or a
            ``pavi://`` path) uses mmengine's own save.
    """
    filename = os.fspath(filename)
    if (file_client_args is not None or filename.startswith('pavi://') or not isinstance(
            get_file_backend(filename, backend_args=backend_args), LocalBackend)):
        _MMENGINE_SAVE_CHECKPOINT(checkpoint, filename, file_client_args, backend_args)
        return
    directory = osp.dirname(osp.abspath(filename))
    os.makedirs(directory, exist_ok=True)
    tmp_path = filename + '.tmp'
    try:
        with open(tmp_path, 'wb') as f:
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, filename)
    except BaseException:
        if osp.exists(tmp_path):
            os.remove(tmp_path)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    """Makes a rename inside ``directory`` durable (POSIX; a no-op where directories cannot be
    opened, e.g. Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def install_atomic_checkpoint_save() -> None:
    """Makes mmengine save checkpoints with :func:`atomic_save_checkpoint`.

    Rebinds ``save_checkpoint`` in ``mmengine.runner.checkpoint`` (read by the training
    strategies), ``mmengine.runner.runner`` (``Runner.save_checkpoint``) and ``mmengine.runner``
    (``CheckpointHook`` and user code). Idempotent; called when :mod:`mmdfkd` is imported.
    """
    for module in _SAVE_CHECKPOINT_MODULES:
        module.save_checkpoint = atomic_save_checkpoint


def checkpoint_problem(path: str) -> Optional[str]:
    """Says why a checkpoint file cannot be loaded, or None if it can.

    The file must exist, be a complete PyTorch zip archive whose members all pass their CRC
    check (a file truncated or damaged on disk does not), and load with
    ``torch.load(weights_only=True)`` under the allow-list of
    :mod:`mmdfkd.utils.safe_checkpoint` (a pickle that would run code does not).

    Args:
        path: The checkpoint file.

    Returns:
        None, or one sentence naming the file and what is wrong with it.
    """
    if not osp.isfile(path):
        return f'{path} does not exist'
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError) as exc:
        return (f'{path} is not a complete PyTorch checkpoint ({exc}): it was truncated, e.g. '
                'by a run killed while saving, or is not a checkpoint')
    if damaged is not None:
        return f'{path} is corrupt: its member {damaged} fails its CRC check'
    try:
        torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message goes on about weights_only=False; keep the line naming the object.
        lines = str(exc).splitlines() or ['']
        detail = next((line for line in lines if 'GLOBAL' in line), lines[0])
        return (f'{path} holds pickled objects that are not allowed to be loaded '
                f'(weights_only=True; they could run code): {detail.strip().rstrip(".")}')
    except (RuntimeError, EOFError, OSError) as exc:
        return f'{path} could not be loaded ({type(exc).__name__}: {exc})'
    return None


def find_resumable_checkpoint(work_dir: str) -> Tuple[Optional[str], List[str]]:
    """The checkpoint ``--resume`` (without a path) should continue from.

    That is the file named by ``work_dir/last_checkpoint`` if it loads; otherwise the newest
    loadable ``iter_N.pth`` / ``epoch_N.pth`` of ``work_dir`` (largest N).

    Args:
        work_dir: The run's work dir.

    Returns:
        ``(path, skipped)``: the checkpoint (None if there is none to resume from) and one
        message per checkpoint passed over, saying why.
    """
    skipped: List[str] = []
    checked = set()
    pointer = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer) as f:
            named = f.read().strip()
        if named:
            problem = checkpoint_problem(named)
            if problem is None:
                return named, skipped
            skipped.append(f'last_checkpoint names {problem}')
            checked.add(osp.abspath(named))
        else:
            skipped.append(f'{pointer} is empty (the run was killed while writing it)')
    steps = []
    for name in os.listdir(work_dir) if osp.isdir(work_dir) else ():
        match = _STEP_CHECKPOINT.match(name)
        if match:
            steps.append((int(match.group(1)), osp.join(work_dir, name)))
    for _, path in sorted(steps, reverse=True):
        if osp.abspath(path) in checked:
            continue
        problem = checkpoint_problem(path)
        if problem is None:
            return path, skipped
        skipped.append(problem)
    return None, skipped
