"""The seed's two augmentations, as data-pipeline transforms: only some samples see them.

Both change pixels only: boxes, masks and labels are left as they are. Registered in
mmengine's root ``TRANSFORMS``, so mmdet, mmseg and mmpretrain pipelines all find them. The
batch versions, for the data preprocessors' ``batch_augments``, are in
:mod:`pce_mm.models.batch_augments`.
"""
from typing import Sequence

import numpy as np
from mmcv.transforms import BaseTransform

from ..augmentation import black_squares, check_prob, check_range
from ..registry import TRANSFORMS

__all__ = ['RandomChannelBoost', 'RandomBlackPatches']


@TRANSFORMS.register_module()
class RandomChannelBoost(BaseTransform):
    """With probability ``prob``, multiplies one random colour channel by a factor drawn
    from ``factor`` (clipped to 255): an image with its red, green or blue raised.

    Required keys: ``img``. Modified keys: ``img``.
    """

    def __init__(self, prob: float = 0.5, factor: Sequence[float] = (1.2, 1.8)):
        self.prob = check_prob('RandomChannelBoost', prob)
        self.factor = check_range('RandomChannelBoost', 'factor', factor, 1.0, 100.0)

    def transform(self, results: dict) -> dict:
        img = results['img']
        if np.random.rand() >= self.prob or img.ndim != 3:
            return results
        channel = np.random.randint(img.shape[2])
        boosted = img[..., channel].astype(np.float32) * np.random.uniform(*self.factor)
        img = img.copy()
        img[..., channel] = np.clip(boosted, 0, 255).astype(img.dtype)
        results['img'] = img
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(prob={self.prob}, factor={self.factor})'


@TRANSFORMS.register_module()
class RandomBlackPatches(BaseTransform):
    """With probability ``prob``, blacks out ``num_patches`` random squares whose side is a
    fraction ``size`` of the image's shorter side, hiding details.

    Required keys: ``img``. Modified keys: ``img``.
    """

    def __init__(self, prob: float = 0.5, num_patches: Sequence[int] = (1, 4),
                 size: Sequence[float] = (0.05, 0.2)):
        self.prob = check_prob('RandomBlackPatches', prob)
        self.num_patches = check_range('RandomBlackPatches', 'num_patches', num_patches, 1,
                                       1000, integer=True)
        self.size = check_range('RandomBlackPatches', 'size', size, 1e-6, 1.0)

    def transform(self, results: dict) -> dict:
        if np.random.rand() >= self.prob:
            return results
        img = results['img'].copy()
        for y0, y1, x0, x1 in black_squares(img.shape[0], img.shape[1], self.num_patches,
                                            self.size, np.random):
            img[y0:y1, x0:x1] = 0
        results['img'] = img
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(prob={self.prob}, num_patches={self.num_patches}, '
                f'size={self.size})')
