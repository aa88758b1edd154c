"""A seeded fraction of a dataset, for training-set-size studies.

mmengine's ``indices`` takes the first items of a dataset's own annotation list, before any
wrapper (such as the ``KFoldDataset`` that holds the digits' validation share out) has
split it; this wrapper takes its fraction of whatever it wraps, at random but seeded. With
one seed a smaller fraction is part of a larger one, so a learning curve adds data.
"""
import copy
from typing import Union

import numpy as np

from ..registry import DATASETS

__all__ = ['SubsetDataset']


@DATASETS.register_module()
class SubsetDataset:
    """``fraction`` of ``dataset``'s items, drawn by a seeded shuffle and kept in their
    order; ``fraction=1`` is the dataset itself, item for item.

    Args:
        dataset: a dataset or its config.
        fraction: the share kept, in ``(0, 1]``; at least one item.
        seed: the shuffle's seed.
    """

    def __init__(self, dataset: Union[dict, object], fraction: float = 1.0, seed: int = 0):
        if not 0 < fraction <= 1:
            raise ValueError(f'SubsetDataset fraction must be in (0, 1], got {fraction}')
        self.dataset = DATASETS.build(dataset) if isinstance(dataset, dict) else dataset
        self.fraction = fraction
        size = len(self.dataset)
        if fraction == 1:
            self.indices = list(range(size))
        else:
            order = np.random.default_rng(seed).permutation(size)
            self.indices = sorted(order[:max(1, round(size * fraction))].tolist())

    @property
    def metainfo(self) -> dict:
        return copy.deepcopy(getattr(self.dataset, 'metainfo', {}))

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, idx: int):
        return self.dataset[self.indices[idx]]

    def get_data_info(self, idx: int) -> dict:
        return self.dataset.get_data_info(self.indices[idx])
