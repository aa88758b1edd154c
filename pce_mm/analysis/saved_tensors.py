"""Counting what autograd keeps for backward: the memory a training step holds between its
forward and its backward, besides the parameters."""
from typing import Callable, Dict, Optional

import torch

__all__ = ['SavedForBackward']


class SavedForBackward(torch.autograd.graph.saved_tensors_hooks):
    """A context manager that records the storages autograd keeps for backward inside it,
    each once: ``storages`` maps a storage's address to its size in bytes, ``where`` to the
    label ``label()`` gave when it was first kept (``None`` without ``label``); ``mib`` is
    their total in MiB. Storages in ``exclude`` (addresses, e.g. the parameters') are
    skipped.

    Example:
        >>> with SavedForBackward() as saved:
        ...     loss = model(x).sum()
        >>> saved.mib
    """

    def __init__(self, exclude: frozenset = frozenset(),
                 label: Optional[Callable[[], str]] = None):
        self.storages: Dict[int, int] = {}
        self.where: Dict[int, Optional[str]] = {}
        self.exclude, self.label = exclude, label
        super().__init__(self._pack, lambda tensor: tensor)

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in self.exclude and ptr not in self.storages:
            self.storages[ptr] = storage.nbytes()
            self.where[ptr] = self.label() if self.label else None
        return tensor

    def __enter__(self) -> 'SavedForBackward':
        super().__enter__()
        return self

    @property
    def mib(self) -> float:
        return sum(self.storages.values()) / 2**20
