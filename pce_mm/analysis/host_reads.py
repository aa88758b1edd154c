"""Counting the places where the host reads a tensor's value.

On a GPU each such read (``.tolist()``, ``.item()``, ``bool(t)``, ...) waits for every
queued kernel: a synchronisation that stalls the stream. On a CPU nothing waits, but the
same calls happen, so counting them here tells how many a step will cost on a GPU.
"""
from collections import Counter

from torch.overrides import TorchFunctionMode

__all__ = ['HostReads']

# Tensor methods that hand a tensor's value to Python.
READS = frozenset({'tolist', 'item', '__bool__', '__int__', '__float__', '__index__', 'cpu',
                   'numpy'})


class HostReads(TorchFunctionMode):
    """A context manager that counts, by method name, the host reads of tensor values
    made inside it (``counts``, ``total``).

    Example:
        >>> with HostReads() as reads:
        ...     model(x).sum().backward()
        >>> reads.total
    """

    def __init__(self):
        super().__init__()
        self.counts: Counter = Counter()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, '__name__', '')
        if name in READS:
            self.counts[name] += 1
        return func(*args, **(kwargs or {}))
