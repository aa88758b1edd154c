"""The seed's augmentations as batch augments of the data preprocessors, so that only some
*batches* see them (the pipeline transforms of :mod:`pce_mm.datasets.transforms` pick
samples).

Data preprocessors call batch augments after normalisation, as ``aug(inputs, other)``,
where ``other`` is mmdet's data samples or mmpretrain's label scores: both are returned
unchanged (scores as floats, as mmpretrain's own batch augments return them). ``mean``
and ``std`` (those of the preprocessor) map pixels back to ``[0, 255]`` so that black is
black and a boosted channel clips at 255. Registered for mmdet
(``DetDataPreprocessor(batch_augments=[...])``) and mmpretrain
(``ClsDataPreprocessor(batch_augments=dict(augments=[...]))``). mmseg 1.2.2's
``SegDataPreProcessor`` calls its ``batch_augments`` argument without building it from the
config, so mmseg configs use the transforms instead.
"""
from typing import Any, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from ..augmentation import black_squares, check_prob, check_range
from ..registry import BATCH_AUGMENTS, MODELS

__all__ = ['BatchChannelBoost', 'BatchBlackPatches']


class _BatchAugment(nn.Module):

    def __init__(self, prob: float, mean: Optional[Sequence[float]],
                 std: Optional[Sequence[float]]):
        super().__init__()
        self.prob = check_prob(type(self).__name__, prob)
        if (mean is None) != (std is None):
            raise ValueError(f'{type(self).__name__}: give both mean and std, or neither')
        self.mean = None if mean is None else torch.tensor(mean).view(1, -1, 1, 1)
        self.std = None if std is None else torch.tensor(std).view(1, -1, 1, 1)

    def forward(self, inputs: torch.Tensor, other: Any) -> Tuple[torch.Tensor, Any]:
        if torch.is_tensor(other):
            # mmpretrain passes one-hot label scores and expects them back as floats (its
            # losses take float targets as soft labels), as its own batch augments return.
            other = other.float()
        if np.random.rand() >= self.prob:
            return inputs, other
        pixels = inputs if self.mean is None else \
            inputs * self.std.to(inputs) + self.mean.to(inputs)
        pixels = self.augment(pixels.clone())
        out = pixels if self.mean is None else \
            (pixels - self.mean.to(inputs)) / self.std.to(inputs)
        return out, other

    def augment(self, pixels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


@MODELS.register_module()
@BATCH_AUGMENTS.register_module()
class BatchChannelBoost(_BatchAugment):
    """With probability ``prob`` per batch, raises one random channel of every image by a
    factor drawn from ``factor`` (each image its own channel and factor)."""

    def __init__(self, prob: float = 0.5, factor: Sequence[float] = (1.2, 1.8),
                 mean: Optional[Sequence[float]] = None, std: Optional[Sequence[float]] = None):
        super().__init__(prob, mean, std)
        self.factor = check_range('BatchChannelBoost', 'factor', factor, 1.0, 100.0)

    def augment(self, pixels: torch.Tensor) -> torch.Tensor:
        for img in pixels:
            channel = np.random.randint(img.shape[0])
            img[channel] = (img[channel] * np.random.uniform(*self.factor)).clamp(max=255)
        return pixels


@MODELS.register_module()
@BATCH_AUGMENTS.register_module()
class BatchBlackPatches(_BatchAugment):
    """With probability ``prob`` per batch, blacks out random squares in every image."""

    def __init__(self, prob: float = 0.5, num_patches: Sequence[int] = (1, 4),
                 size: Sequence[float] = (0.05, 0.2), mean: Optional[Sequence[float]] = None,
                 std: Optional[Sequence[float]] = None):
        super().__init__(prob, mean, std)
        self.num_patches = check_range('BatchBlackPatches', 'num_patches', num_patches, 1,
                                       1000, integer=True)
        self.size = check_range('BatchBlackPatches', 'size', size, 1e-6, 1.0)

    def augment(self, pixels: torch.Tensor) -> torch.Tensor:
        for img in pixels:
            for y0, y1, x0, x1 in black_squares(img.shape[1], img.shape[2], self.num_patches,
                                                self.size, np.random):
                img[:, y0:y1, x0:x1] = 0
        return pixels
