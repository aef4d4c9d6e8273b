"""``atomic_local``: an mmengine file backend that replaces a local file atomically.

mmengine 0.10.7 writes a checkpoint by opening the final path and writing the bytes into it, so a
run killed while saving leaves a truncated file under the name of a good one, and ``--resume``
then fails on it. :class:`AtomicLocalBackend` writes the bytes to ``PATH.tmp`` in the same
directory, flushes them to disk and renames the file over ``PATH`` (``os.replace``, atomic on POSIX
and Windows). A kill at any point leaves either the previous file or the new one, never a mix; at
worst a stale ``PATH.tmp``, which the next save overwrites.

Importing this module registers the backend in mmengine's file-backend registry under the name
``'atomic_local'``; nothing else changes, and a run uses it only when its config asks for it::

    default_hooks = dict(checkpoint=dict(backend_args=dict(backend='atomic_local')))

mmengine's ``CheckpointHook`` then hands those ``backend_args`` to ``Runner.save_checkpoint``
(so ``iter_N.pth`` / ``epoch_N.pth`` and best checkpoints are written through :meth:`put`) and to
its own file backend (which removes checkpoints beyond ``max_keep_ckpts``). It writes its
``last_checkpoint`` pointer with a plain ``open`` that no backend reaches;
:func:`~mmdfkd.utils.checkpoint_files.find_resumable_checkpoint` therefore checks the file that
pointer names and falls back to the newest checkpoint that loads.
"""
import os
import os.path as osp
from pathlib import Path
from typing import Optional, Union

from mmengine.fileio import LocalBackend, register_backend

# The name a config gives in ``backend_args=dict(backend=...)``.
ATOMIC_LOCAL_BACKEND = 'atomic_local'


@register_backend(ATOMIC_LOCAL_BACKEND)
class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend, with writes that replace the target file atomically.

    Reading, listing, copying and removing are :class:`mmengine.fileio.LocalBackend`'s.
    """

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        """Writes bytes to ``filepath`` atomically, creating its directory if needed.

        Args:
            obj: The bytes to write.
            filepath: The file to write; it is replaced only once every byte is on disk.
        """
        _replace_atomically(obj, filepath, 'wb')

    def put_text(self, obj: str, filepath: Union[str, Path], encoding: str = 'utf-8') -> None:
        """Writes text to ``filepath`` atomically, creating its directory if needed.

        Args:
            obj: The text to write.
            filepath: The file to write; it is replaced only once all the text is on disk.
            encoding: The text encoding. Defaults to ``'utf-8'``.
        """
        _replace_atomically(obj, filepath, 'w', encoding)


def _replace_atomically(obj: Union[bytes, str], filepath: Union[str, Path], mode: str,
                        encoding: Optional[str] = None) -> None:
    """Writes ``obj`` to ``filepath + '.tmp'``, fsyncs it and renames it over ``filepath``.

    The directory entry is fsynced too. If anything fails before the rename, the temporary
    file is removed and ``filepath`` is as it was.
    """
    filepath = os.fspath(filepath)
    directory = osp.dirname(osp.abspath(filepath))
    os.makedirs(directory, exist_ok=True)
    tmp_path = filepath + '.tmp'
    try:
        with open(tmp_path, mode, encoding=encoding) as f:
            f.write(obj)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, filepath)
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
