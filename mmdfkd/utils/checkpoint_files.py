"""Checkpoint files on disk: checked before they are loaded, by one loader.

:func:`load_checkpoint_file` (and :func:`checkpoint_problem`, which says why a file does not
load) checks a checkpoint before ``torch.load(weights_only=True)`` reads it: it tells truncated,
damaged and unsafe files apart and names the file in one sentence. Both formats of
``torch.save`` load: the zip archive and the legacy format of torch < 1.6. Objects are unpickled
under the allow-list of :mod:`mmdfkd.utils.safe_checkpoint`, for that one load only.

Teachers, ``tools/test.py``, ``tools/export_student.py``, ``--resume`` and the stored teacher
outputs of a synthetic bank load their files through it. mmengine reads
``load_from``, ``resume`` and ``mmengine.runner.load_checkpoint`` through its own
``CheckpointLoader``, whose loader of local paths (the ``''`` prefix) torch-loads the file
unchecked; :func:`register_checked_local_loader` (called when :mod:`mmdfkd` is imported) puts
:func:`load_from_checked_local` in its place, through mmengine's ``register_scheme``. Other
schemes (``http://``, ``open-mmlab://``, ...) keep mmengine's loaders.

:func:`find_resumable_checkpoint` picks the checkpoint ``--resume`` continues from. mmengine's
``CheckpointHook`` writes the ``last_checkpoint`` pointer with a plain ``open``, so the file it
names is checked, and otherwise the newest readable checkpoint of the work dir is taken. The hook
also deletes the oldest checkpoint beyond ``max_keep_ckpts`` *before* it writes the new one, so
with ``max_keep_ckpts=1`` a run killed while saving has no checkpoint left; keep 2 or more (or
-1, all) where runs may be killed. Checkpoints themselves are written atomically by the
``atomic_local`` file backend (:mod:`mmdfkd.utils.atomic_file_backend`) where a config selects
it.
"""
import os
import os.path as osp
import pickle
import pickletools
import re
import zipfile
from typing import Any, Callable, List, Optional, Tuple, Union

import torch
from mmengine.runner import CheckpointLoader

from .safe_checkpoint import mmengine_checkpoint_globals

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
# Where torch.load puts the tensors: a device, a device name, a mapping or a function.
MapLocation = Union[None, str, torch.device, dict, Callable]


class CheckpointFileError(RuntimeError):
    """A checkpoint file cannot be loaded; ``str(error)`` is one sentence naming the file."""


def load_checkpoint_file(path: str, map_location: MapLocation = 'cpu') -> Any:
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
        map_location: Where the tensors go, as for ``torch.load``. Defaults to ``'cpu'``.

    Returns:
        The loaded object.

    Raises:
        CheckpointFileError: If the file does not exist, is a directory, is truncated or
            damaged, is not a PyTorch checkpoint, or holds pickled objects that are refused.
    """
    legacy = check_checkpoint_file(path)
    try:
        with mmengine_checkpoint_globals():
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointFileError(_refused_pickle_message(path, exc)) from exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        detail = f'{type(exc).__name__}: {_first_line(str(exc))}'
        if legacy:  # its pickles are complete: the tensor data after them ends too early
            raise CheckpointFileError(f'{path} is not a complete PyTorch checkpoint (legacy '
                                      f'format; {detail}): {_TRUNCATED}') from exc
        raise CheckpointFileError(f'{path} could not be loaded ({detail})') from exc


def check_checkpoint_file(path: str) -> bool:
    """Checks that a file is a complete, undamaged ``torch.save`` file, without loading it.

    The checks of :func:`load_checkpoint_file` before it unpickles anything: for a zip archive,
    completeness and every member's CRC; for the legacy format, that every pickle is complete.
    For a loader of another library (timm's) that loads the file itself.

    Args:
        path: The checkpoint file.

    Returns:
        Whether the file is in torch's legacy format.

    Raises:
        CheckpointFileError: If the file does not exist, is a directory, is truncated or
            damaged, or is not a PyTorch checkpoint.
    """
    legacy = _is_legacy_format(path)
    if legacy:
        _check_legacy_pickles(path)
    else:
        _check_zip_archive(path)
    return legacy


def load_from_checked_local(filename: str, map_location: MapLocation = None) -> Any:
    """mmengine's ``CheckpointLoader`` scheme for local paths: :func:`load_checkpoint_file`.

    Takes the place of mmengine's ``load_from_local``, with its arguments and its
    ``FileNotFoundError`` for a missing file.

    Args:
        filename: The checkpoint file; ``~`` is expanded.
        map_location: Where the tensors go, as for ``torch.load``; None keeps the devices they
            were saved from. Defaults to None.

    Returns:
        The loaded checkpoint.

    Raises:
        FileNotFoundError: If nothing exists at ``filename``.
        CheckpointFileError: If the file cannot be loaded (see :func:`load_checkpoint_file`).
    """
    filename = osp.expanduser(filename)
    if not osp.exists(filename):
        raise FileNotFoundError(f'Checkpoint {filename} does not exist')
    return load_checkpoint_file(filename, map_location)


def register_checked_local_loader() -> None:
    """Makes mmengine load local checkpoints with :func:`load_from_checked_local`.

    Registers it for the ``''`` prefix of ``mmengine.runner.CheckpointLoader`` (``force=True``,
    replacing mmengine's ``load_from_local``), which ``Runner`` ``load_from`` and ``resume``,
    ``mmengine.runner.load_checkpoint`` and mmdet's ``init_detector`` go through. Idempotent;
    called when :mod:`mmdfkd` is imported.
    """
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_checked_local, force=True)


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
