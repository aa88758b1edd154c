"""The NaN/inf diagnosis of a PCENet forward: where non-finite values first appeared.

Each block records, without a host read, whether its router logits, expert outputs and
context output were finite; the backbone reads all flags at once after the forward (one host
synchronisation) and, when one is false, raises naming the first block and part.
"""
from typing import Callable, List, Optional, Tuple

import torch

__all__ = ['raise_if_not_finite']

PARTS = ('router logits', 'expert outputs', 'context output')


def raise_if_not_finite(stem_finite: torch.Tensor,
                        flags: List[Tuple[str, Optional[torch.Tensor]]],
                        where: Callable[[], str] = str) -> None:
    """Raises ``FloatingPointError`` naming the first non-finite part: the stem (the input
    or the weights), else the first block of ``flags`` (``(name, [router, experts,
    context] finite)`` in forward order) with a false flag. ``where()``: the training
    position, for the message, read only when raising."""
    flags = [(name, f) for name, f in flags if f is not None]
    if bool(torch.cat([stem_finite.view(1)] + [f for _, f in flags]).all()):
        return
    if not stem_finite:
        raise FloatingPointError(
            f'PCENet: the stem output holds NaN/inf{where()}: the input image or the weights '
            'are already non-finite (did an earlier step diverge?)')
    for name, finite in flags:
        bad = [PARTS[i] for i, ok in enumerate(finite.tolist()) if not ok]
        if bad:
            after = f' (then in its {", ".join(bad[1:])})' if len(bad) > 1 else ''
            raise FloatingPointError(
                f'PCENet: non-finite values (NaN/inf) first in {bad[0]} of block '
                f'backbone.{name}{after}{where()}; lower the learning rate, or set '
                'loss_cfg=dict(z=...) to keep router logits bounded')
