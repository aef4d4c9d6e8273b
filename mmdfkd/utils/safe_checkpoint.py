"""Let mmengine checkpoints load under ``torch.load(weights_only=True)``, inside one scope.

torch >= 2.6 loads checkpoints with ``weights_only=True`` by default, and mmengine 0.10.7 calls
``torch.load`` without the argument. Checkpoints written by mmengine's Runner hold more than
tensors: numpy scalars and arrays in ``meta`` and the message hub, and ``HistoryBuffer`` objects
whose pickled state names their statistics methods through ``getattr(HistoryBuffer, 'mean')``.
Without help, loading or resuming such a checkpoint fails.

A checkpoint is untrusted input, so ``weights_only`` stays on. :func:`mmengine_checkpoint_globals`
allows exactly the types those checkpoints contain, for the loads inside its ``with`` block only:
torch's process-wide allow-list (``torch.serialization.get_safe_globals()``) is the same after the
block as before. :func:`~mmdfkd.utils.checkpoint_files.load_checkpoint_file`, the one loader of
the project (and of mmengine's local checkpoints once :mod:`mmdfkd` is imported), loads inside it.

Two builtins those checkpoints name are never allowed as such. ``builtins.getattr`` resolves to
:func:`_history_buffer_getattr`, which only looks up statistics methods registered on
``HistoryBuffer`` and refuses anything else. ``builtins.bytes``, which pickle protocol 2
(torch.save's) calls without arguments for every empty ``bytes`` (the data of an empty numpy
array, e.g. that of an empty ``HistoryBuffer``), resolves to :func:`_empty_bytes`, which returns
``b''`` and refuses any argument (``bytes(N)`` would allocate N bytes). Non-empty bytes are
pickled through ``_codecs.encode``, which torch allows itself.
"""
import contextlib
import pickle
import reprlib
import threading
from typing import Any, Callable, Iterator

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

# numpy >= 2 moved ``numpy.core`` to ``numpy._core``; checkpoints written under either name load.
_NUMPY_CORE = np._core if hasattr(np, '_core') else np.core
_BUILTIN_STATISTICS = frozenset({'min', 'max', 'mean', 'current'})


def _history_buffer_getattr(obj: Any, name: str) -> Callable:
    """Stand-in for ``getattr`` while unpickling: only ``HistoryBuffer`` statistics methods.

    Args:
        obj: The object the pickle asks an attribute of; must be the ``HistoryBuffer`` class.
        name: The attribute name; must be a statistics method registered on ``HistoryBuffer``
            (``min``, ``max``, ``mean``, ``current`` or one added by ``register_statistics``).

    Returns:
        The statistics method.

    Raises:
        pickle.UnpicklingError: For any other object or name.
    """
    # The class-level registry stays empty until a first HistoryBuffer is created, so the
    # built-in statistics are allowed by name as well.
    allowed = _BUILTIN_STATISTICS | set(HistoryBuffer._statistics_methods)
    if obj is HistoryBuffer and name in allowed:
        return HistoryBuffer._statistics_methods.get(name) or getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'Refusing getattr({obj!r}, {name!r}) while loading a checkpoint: only the '
        f'HistoryBuffer statistics methods {sorted(allowed)} are allowed. The checkpoint was '
        'not written by mmengine or has been tampered with.')


def _empty_bytes(*args: Any) -> bytes:
    """Stand-in for ``bytes`` while unpickling: only ``bytes()``, the empty bytes.

    Args:
        *args: The arguments the pickle passes; there must be none.

    Returns:
        ``b''``.

    Raises:
        pickle.UnpicklingError: For any argument.
    """
    if args:
        raise pickle.UnpicklingError(
            f'Refusing bytes{reprlib.repr(args)} while loading a checkpoint: a pickled bytes '
            'object calls bytes() without arguments only. The checkpoint was crafted or '
            'tampered with.')
    return b''


def _safe_globals() -> list:
    """Returns the allow-list entries, as accepted by ``torch.serialization.safe_globals``."""
    entries: list = [HistoryBuffer, np.dtype, np.ndarray,
                     (_history_buffer_getattr, 'builtins.getattr'),
                     (_empty_bytes, 'builtins.bytes')]
    for core in ('numpy._core', 'numpy.core'):
        entries.append((_NUMPY_CORE.multiarray._reconstruct, f'{core}.multiarray._reconstruct'))
        entries.append((_NUMPY_CORE.multiarray.scalar, f'{core}.multiarray.scalar'))
    # numpy >= 1.25 pickles the dtype of an array by its class, e.g. numpy.dtypes.Float64DType.
    if hasattr(np, 'dtypes'):
        entries.extend(getattr(np.dtypes, name) for name in np.dtypes.__all__)
    return entries


_MMENGINE_CHECKPOINT_GLOBALS = _safe_globals()
# torch keeps one allow-list for the process: while one thread is inside the scope, another
# leaving it would remove the entries from under the first thread's load.
_SCOPE_LOCK = threading.RLock()


@contextlib.contextmanager
def mmengine_checkpoint_globals() -> Iterator[None]:
    """Allows the types of mmengine Runner checkpoints in ``weights_only`` loads of this block.

    Adds to torch's allow-list the entries it lacks, through
    ``torch.serialization.safe_globals``, and removes exactly those on leaving, so entries that
    were there before (the user's own) stay. Another thread entering the block waits until
    this one has left it. Pickled code (``os.system``, ``builtins.eval``, arbitrary classes) is
    still refused.

    Yields:
        None; call ``torch.load(..., weights_only=True)`` inside the block.
    """
    with _SCOPE_LOCK:
        present = set(torch.serialization.get_safe_globals())
        missing = [entry for entry in _MMENGINE_CHECKPOINT_GLOBALS if entry not in present]
        with torch.serialization.safe_globals(missing):
            yield
