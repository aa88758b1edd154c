"""Loading local checkpoints without running code from their pickles.

A ``.pth`` is a pickle: loaded with ``weights_only=False`` (what mmengine 0.10.7 does on
torch >= 2.6 once told to), a downloaded file passed as ``load_from`` or to
``tools/test.py`` can call any function (``__reduce__``). torch's ``weights_only`` loader
calls only allow-listed functions and builds only allow-listed classes; mmengine's
checkpoints need, besides tensors and containers, exactly these (found with
``torch.serialization.get_unsafe_globals_in_checkpoint`` on a demo checkpoint):

- ``mmengine.logging.history_buffer.HistoryBuffer``: the ``message_hub``'s logged scalars.
  Built empty, then its ``__dict__`` updated from the pickle (plain data: lists, arrays).
- ``builtins.getattr``: a ``HistoryBuffer`` pickles its statistics methods as
  ``getattr(HistoryBuffer, 'mean')``. Allowed as is, ``getattr`` would let a pickle fetch
  any attribute reachable from what it holds, e.g. ``eval`` through
  ``getattr(getattr, '__self__')``, and store it where later code may call it; it is
  therefore replaced by :func:`history_buffer_method`, which returns only those methods.
- numpy's ``ndarray``, ``dtype`` (and its per-type classes in ``numpy.dtypes``, on which the
  pickle calls ``__setstate__``), ``_reconstruct`` and ``scalar``: arrays and scalars in
  ``meta`` and in the buffers; they build numpy arrays, dtypes and scalars from bytes, and
  object arrays only from objects the loader has already vetted.

Anything else is refused with :class:`UnsafeCheckpointError`, naming the file and the
global. Files you trust (your own, from before this check, holding other objects) load as
before when listed in the environment variable ``PCE_MM_TRUSTED_CHECKPOINTS``
(paths separated by ``os.pathsep``).
"""
import os
import os.path as osp
import pickle
from typing import Any, Callable, List, Tuple

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from numpy._core import multiarray

__all__ = ['UnsafeCheckpointError', 'load_local', 'safe_globals', 'history_buffer_method',
           'TRUST_ENV']

TRUST_ENV = 'PCE_MM_TRUSTED_CHECKPOINTS'


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint's pickle asks for a global outside the allow-list."""


def history_buffer_method(owner: Any, name: str) -> Callable:
    """``getattr`` as mmengine's checkpoints use it: a statistics method of
    ``HistoryBuffer`` (a plain function of the class), and nothing else."""
    method = vars(HistoryBuffer).get(name) if owner is HistoryBuffer else None
    if not callable(method) or name.startswith('_'):
        raise UnsafeCheckpointError(
            f'getattr({owner!r}, {name!r}): a checkpoint may only fetch the statistics '
            'methods of mmengine HistoryBuffer this way')
    return method


def safe_globals() -> List[Tuple[Any, str]]:
    """The allow-list, as ``(object, path in the pickle)`` pairs for
    ``torch.serialization.safe_globals``."""
    pairs = [(HistoryBuffer, 'mmengine.logging.history_buffer.HistoryBuffer'),
             (history_buffer_method, 'builtins.getattr'),
             (np.ndarray, 'numpy.ndarray'), (np.dtype, 'numpy.dtype')]
    # numpy 1.x wrote numpy.core into its pickles; numpy 2 reads both.
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        pairs += [(multiarray._reconstruct, f'{module}._reconstruct'),
                  (multiarray.scalar, f'{module}.scalar')]
    # A dtype is rebuilt by BUILD on an instance of its class (np.dtype('f8') is a
    # numpy.dtypes.Float64DType): the loader allows that only for listed types.
    pairs += [(cls, f'numpy.dtypes.{name}') for name, cls in vars(np.dtypes).items()
              if isinstance(cls, type) and issubclass(cls, np.dtype)]
    return pairs


def _trusted(filename: str) -> bool:
    listed = [p for p in os.environ.get(TRUST_ENV, '').split(os.pathsep) if p]
    return any(osp.realpath(p) == osp.realpath(filename) for p in listed)


def _refusal(filename: str, error: Exception) -> UnsafeCheckpointError:
    allowed = {path for _, path in safe_globals()}
    try:
        offending = [g for g in torch.serialization.get_unsafe_globals_in_checkpoint(filename)
                     if g not in allowed]
    except Exception:                      # not a zip checkpoint: the loader's message says it
        offending = []
    # torch's message: its advice, then the unpickler's own line after this marker.
    detail = str(error).split('WeightsUnpickler error:')[-1].strip().splitlines()[0]
    what = (f'global(s) {", ".join(offending)}' if offending else
            f'something outside the allow-list ({detail})')
    return UnsafeCheckpointError(
        f'Refusing to load checkpoint {filename}: its pickle uses {what}, which an mmengine '
        'checkpoint does not hold, and unpickling it could run code. If you trust this file, '
        f'list it in the environment variable {TRUST_ENV} (paths separated by '
        f'{os.pathsep!r}) to load it with weights_only=False.')


def load_local(filename: str, map_location=None) -> Any:
    """mmengine's local-file checkpoint loader, with ``weights_only=True`` and the
    allow-list above (registered for every local path by :mod:`pce_mm.compat`)."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    if _trusted(filename):
        return torch.load(filename, map_location=map_location, weights_only=False)
    try:
        with torch.serialization.safe_globals(safe_globals()):
            return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        raise _refusal(filename, error) from None
