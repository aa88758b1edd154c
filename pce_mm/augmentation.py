"""What the seed's two augmentations share, in both their forms: the per-image transforms
(:mod:`pce_mm.datasets.transforms`) and the batch augments
(:mod:`pce_mm.models.batch_augments`). A module of its own, so that ``models/`` does not
import ``datasets/``.
"""
from typing import Sequence, Tuple

import numpy as np

__all__ = ['check_prob', 'check_range', 'black_squares']


def check_prob(owner: str, prob: float) -> float:
    if not 0 <= prob <= 1:
        raise ValueError(f'{owner} prob must be in [0, 1], got {prob}')
    return float(prob)


def check_range(owner: str, name: str, value: Sequence, low: float, high: float,
                integer: bool = False) -> Tuple:
    """``(lo, hi)`` with ``low <= lo <= hi <= high``, else an error naming the setting."""
    if isinstance(value, (int, float)):
        value = (value, value)
    ok = (len(value) == 2 and value[0] <= value[1] and low <= value[0] and value[1] <= high
          and (not integer or all(float(v).is_integer() for v in value)))
    if not ok:
        kind = 'integers' if integer else 'numbers'
        raise ValueError(f'{owner} {name} must be two {kind} lo <= hi in [{low}, {high}], '
                         f'got {value}')
    return tuple(value)


def black_squares(height: int, width: int, num: Tuple[int, int], size: Tuple[float, float],
                  rng: np.random.RandomState) -> list:
    """Random squares ``(y0, y1, x0, x1)``, sides a fraction ``size`` of the shorter side."""
    squares = []
    for _ in range(rng.randint(num[0], num[1] + 1)):
        side = max(1, int(round(rng.uniform(*size) * min(height, width))))
        y, x = rng.randint(0, height - side + 1), rng.randint(0, width - side + 1)
        squares.append((y, y + side, x, x + side))
    return squares
