"""Checkpoint files on disk: written atomically, checked before they are loaded.

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

:func:`load_checkpoint_file` (and :func:`checkpoint_problem`, which says why a file does not
load) checks a checkpoint before ``torch.load(weights_only=True)`` reads it: it tells
truncated, damaged and unsafe files apart and names the file in one sentence. Both formats of
``torch.save`` load: the zip archive and the legacy format of torch < 1.6.
"""
import os
import os.path as osp
import pickle
import pickletools
import re
import zipfile
from typing import Any, Callable, List, Optional, Tuple

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
# How a file written by torch.save starts: a zip archive (torch >= 1.6)...
_ZIP_MAGIC = b'PK\x03\x04'
# ...or, in the legacy format (_use_new_zipfile_serialization=False), a pickle of torch's magic
# number, in the pickle protocol the file was saved with (2 unless chosen otherwise).
_LEGACY_MAGICS = tuple(pickle.dumps(torch.serialization.MAGIC_NUMBER, protocol=protocol)
                       for protocol in range(pickle.HIGHEST_PROTOCOL + 1))
_MAGICS = (_ZIP_MAGIC, *_LEGACY_MAGICS)
# The pickles of a legacy file, before the raw tensor data: magic number, format version,
# system information, the saved object and the keys of its tensor storages.
_LEGACY_PICKLES = 5
_TRUNCATED = ('the file is truncated (by a run killed while saving, or an interrupted copy or '
              'download) or damaged')
# .pth files named in the message of a directory given as a checkpoint, at most.
_SHOWN_FILES = 5


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


class CheckpointFileError(RuntimeError):
    """A checkpoint file cannot be loaded; ``str(error)`` is one sentence naming the file."""


def load_checkpoint_file(path: str) -> Any:
    """Loads a checkpoint file with ``torch.load(weights_only=True)``, after checking it.

    Both formats of ``torch.save`` load. A zip archive (the format since torch 1.6) must be
    complete and every member must pass its CRC check: ``torch.load`` checks none, so damage
    inside a tensor would load as wrong weights. A file in torch's legacy format
    (``_use_new_zipfile_serialization=False``, as written by mmdet's ``publish_model.py`` and
    by torch < 1.6, e.g. mmdet's older model-zoo files) has no checksums; its pickles must all
    be complete, and its tensor data must not end early. Objects are unpickled under the
    allow-list of :mod:`mmdfkd.utils.safe_checkpoint`: a pickle that would run code is refused.

    Args:
        path: The checkpoint file.

    Returns:
        The loaded object, with its tensors on the CPU.

    Raises:
        CheckpointFileError: If the file does not exist, is a directory, is truncated or
            damaged, is not a PyTorch checkpoint, or holds pickled objects that are refused.
    """
    legacy = _is_legacy_format(path)
    if legacy:
        _check_legacy_pickles(path)
    else:
        _check_zip_archive(path)
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointFileError(_refused_pickle_message(path, exc)) from exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        detail = f'{type(exc).__name__}: {_first_line(str(exc))}'
        if legacy:  # its pickles are complete: the tensor data after them ends too early
            raise CheckpointFileError(f'{path} is not a complete PyTorch checkpoint (legacy '
                                      f'format; {detail}): {_TRUNCATED}') from exc
        raise CheckpointFileError(f'{path} could not be loaded ({detail})') from exc


def checkpoint_problem(path: str) -> Optional[str]:
    """Says why a checkpoint file cannot be loaded, or None if it can.

    The checks and the loading are those of :func:`load_checkpoint_file`.

    Args:
        path: The checkpoint file.

    Returns:
        None, or one sentence naming the file and what is wrong with it.
    """
    try:
        load_checkpoint_file(path)
    except CheckpointFileError as exc:
        return str(exc)
    return None


def _is_legacy_format(path: str) -> bool:
    """Whether a checkpoint file is in torch's legacy format (else it is a zip archive).

    Raises:
        CheckpointFileError: If the file does not exist, is a directory, ends within the first
            bytes of either format, or starts like neither.
    """
    if osp.isdir(path):
        raise CheckpointFileError(_directory_message(path))
    if not osp.isfile(path):
        raise CheckpointFileError(f'{path} does not exist')
    try:
        with open(path, 'rb') as f:
            head = f.read(max(len(magic) for magic in _MAGICS))
    except OSError as exc:
        raise CheckpointFileError(f'{path} could not be read ({exc})') from exc
    if head.startswith(_ZIP_MAGIC):
        return False
    if head.startswith(_LEGACY_MAGICS):
        return True
    if any(magic.startswith(head) for magic in _MAGICS):
        raise CheckpointFileError(f'{path} is not a complete PyTorch checkpoint (it ends after '
                                  f'{len(head)} bytes): {_TRUNCATED}')
    raise CheckpointFileError(
        f'{path} is not a PyTorch checkpoint: it is neither a zip archive nor in the legacy '
        f'format of torch.save (it starts with {head[:8]!r})')


def _check_zip_archive(path: str) -> None:
    """Checks that a zip checkpoint is complete and that every member passes its CRC check."""
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError) as exc:
        raise CheckpointFileError(
            f'{path} is not a complete PyTorch checkpoint ({exc}): {_TRUNCATED}') from exc
    if damaged is not None:
        raise CheckpointFileError(f'{path} is corrupt: its member {damaged} fails its CRC check')


def _check_legacy_pickles(path: str) -> None:
    """Checks that the pickles of a legacy-format checkpoint are complete.

    The pickles are parsed (``pickletools.genops``), not unpickled, so nothing is built or
    run. A file cut short within a pickle fails here; one cut within the tensor data after
    them fails when ``torch.load`` reads that data.
    """
    try:
        with open(path, 'rb') as f:
            for _ in range(_LEGACY_PICKLES):
                for _ in pickletools.genops(f):
                    pass
    except (ValueError, OSError) as exc:
        raise CheckpointFileError(f'{path} is not a complete PyTorch checkpoint (legacy '
                                  f'format; {exc}): {_TRUNCATED}') from exc


def _refused_pickle_message(path: str, error: pickle.UnpicklingError) -> str:
    """The message of a checkpoint whose pickled objects ``weights_only=True`` refused.

    It names what was refused (e.g. the global ``posix.system``). torch's own message advises
    loading with ``weights_only=False`` or allowing the global, either of which would run
    whatever the pickle calls, so it is not repeated.
    """
    # torch.load raises a new error with that advice (``from None``); the unpickler's own
    # error is its context.
    context = error.__context__
    text = str(context if isinstance(context, pickle.UnpicklingError) else error)
    name = re.search(r'GLOBAL (\S+)', text)
    what = f'`{name.group(1)}`' if name else _first_line(text).rstrip('.')
    return (f'{path} holds pickled objects that are not allowed to be loaded ({what}): '
            'unpickling them could run code, so do not load the file with weights_only=False')


def _directory_message(path: str) -> str:
    """Says that ``path`` is a directory, naming the ``.pth`` files in it (newest step
    first)."""
    names = [name for name in os.listdir(path)
             if name.endswith('.pth') and osp.isfile(osp.join(path, name))]

    def order(name: str) -> Tuple[int, str]:
        step = _STEP_CHECKPOINT.match(name)
        return (-int(step.group(1)), '') if step else (1, name)

    names.sort(key=order)
    if not names:
        return f'{path} is a directory, not a checkpoint file, and holds no .pth file'
    listed = ', '.join(names[:_SHOWN_FILES])
    if len(names) > _SHOWN_FILES:
        listed += f' and {len(names) - _SHOWN_FILES} more'
    return f'{path} is a directory, not a checkpoint file; it holds {listed}'


def _first_line(text: str) -> str:
    """The first non-blank line of an error message ('' for none)."""
    return text.strip().splitlines()[0] if text.strip() else ''


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
