"""Which experts fire on which classes: a class x expert count matrix per stage, and the
normalised mutual information between expert choice and class.

Each routed patch is counted once, for its top-1 expert, under the class at its centre:
the image label (classification), the smallest ground-truth box holding the centre
(detection), or the ground-truth mask's label there (segmentation). A patch whose centre has
no class (no box, VOC's 255 "void", the batch padding) counts under the extra row ``none``,
so a matrix sums to the number of routed patches.
"""
from typing import Sequence

import numpy as np
import torch
from scipy.stats import entropy
from sklearn.metrics import mutual_info_score

from .routing import StageRouting

__all__ = ['patch_classes', 'accumulate', 'normalized_mutual_info']


def _to_original(centres: torch.Tensor, sample) -> tuple:
    """Patch centres ``(gh, gw, 2)`` in network-input pixels -> original-image pixels, and a
    mask of those inside the (resized) image rather than the batch padding."""
    img_h, img_w = sample.metainfo.get('img_shape', sample.metainfo.get('ori_shape'))
    ori_h, ori_w = sample.metainfo.get('ori_shape', (img_h, img_w))
    y, x = centres[..., 0], centres[..., 1]
    inside = (y < img_h) & (x < img_w)
    return y * (ori_h / img_h), x * (ori_w / img_w), inside


def patch_classes(routing: StageRouting, data_samples: Sequence, none: int) -> torch.Tensor:
    """``(b, gh, gw)`` class index of every patch; ``none`` where it has no class."""
    out = torch.full(routing.top1.shape, none, dtype=torch.long)
    for i, sample in enumerate(data_samples):
        if 'gt_instances' in sample:                                   # detection
            y, x, inside = _to_original(routing.centres, sample)
            boxes = sample.gt_instances.bboxes
            boxes = getattr(boxes, 'tensor', boxes).cpu().float()     # (m, 4) x0 y0 x1 y1
            labels = sample.gt_instances.labels.cpu()
            if len(boxes):
                hit = ((x[..., None] >= boxes[:, 0]) & (x[..., None] < boxes[:, 2])
                       & (y[..., None] >= boxes[:, 1]) & (y[..., None] < boxes[:, 3]))
                area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
                smallest = torch.where(hit, area, torch.inf).argmin(-1)
                found = hit.any(-1) & inside
                out[i][found] = labels[smallest][found]
        elif 'gt_sem_seg' in sample:                                   # segmentation
            y, x, inside = _to_original(routing.centres, sample)
            seg = sample.gt_sem_seg.data[0].cpu()
            yi = y.long().clamp(max=seg.shape[0] - 1)
            xi = x.long().clamp(max=seg.shape[1] - 1)
            label = seg[yi, xi].long()
            valid = inside & (label < none)
            out[i][valid] = label[valid]
        else:                                                          # classification
            out[i] = int(sample.gt_label.reshape(-1)[0])
    return out


def accumulate(matrix: np.ndarray, routing: StageRouting, classes: torch.Tensor) -> None:
    """Adds one count per patch at ``(class, top-1 expert)`` of ``matrix`` (rows: classes
    and ``none``; columns: experts)."""
    rows, cols = matrix.shape
    index = classes.reshape(-1) * cols + routing.top1.cpu().reshape(-1)
    matrix += np.bincount(index.numpy(), minlength=rows * cols).reshape(rows, cols)


def normalized_mutual_info(matrix: np.ndarray) -> float:
    """Mutual information between row (class) and column (expert) of a count matrix,
    divided by the mean of their entropies (scikit-learn's ``'arithmetic'`` normalisation,
    as ``normalized_mutual_info_score`` of the counted pairs): 0 when the expert says
    nothing about the class, 1 when each determines the other."""
    matrix = np.asarray(matrix, dtype=np.int64)
    norm = (entropy(matrix.sum(1)) + entropy(matrix.sum(0))) / 2 if matrix.any() else 0.0
    if norm <= 0:                  # one class or one expert: nothing to share
        return 0.0
    return max(mutual_info_score(None, None, contingency=matrix), 0.0) / norm
