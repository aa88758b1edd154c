"""ROC AUC for binary classifiers (PatchCamelyon's second metric); mmpretrain has none."""
from typing import List, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from ..registry import METRICS

__all__ = ['AUC', 'roc_auc']


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve: the probability that a random positive scores above a
    random negative (ties count one half), computed from average ranks (Mann-Whitney U).

    Returns NaN when ``labels`` holds only one class.
    """
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels).astype(bool)
    num_pos, num_neg = labels.sum(), (~labels).sum()
    if num_pos == 0 or num_neg == 0:
        return float('nan')
    order = np.argsort(scores, kind='mergesort')
    sorted_scores = scores[order]
    ranks = np.empty(len(scores))
    # Tied scores share the mean of the ranks they span.
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_scores)) + 1]
    ends = np.r_[starts[1:], len(scores)]
    for start, end in zip(starts, ends):
        ranks[order[start:end]] = (start + end + 1) / 2
    u = ranks[labels].sum() - num_pos * (num_pos + 1) / 2
    return float(u / (num_pos * num_neg))


@METRICS.register_module()
class AUC(BaseMetric):
    """ROC AUC of the score of ``pos_label`` against the ground truth, in percent.

    Args:
        pos_label: the class counted as positive (PCam: 1, tumour).
    """
    default_prefix: Optional[str] = 'auc'

    def __init__(self, pos_label: int = 1, collect_device: str = 'cpu',
                 prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.pos_label = pos_label

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            score = sample['pred_score']
            if score.numel() <= self.pos_label:
                raise ValueError(f'AUC pos_label={self.pos_label} but the model scores '
                                 f'{score.numel()} classes')
            self.results.append((float(score[self.pos_label]),
                                 int(torch.as_tensor(sample['gt_label']).reshape(-1)[0])))

    def compute_metrics(self, results: List) -> dict:
        scores, labels = np.array(results).T
        auc = roc_auc(scores, labels == self.pos_label)
        if np.isnan(auc):
            print_log('AUC: the evaluated samples hold one class only; AUC is undefined',
                      logger='current', level=30)
        return {'AUC': auc * 100}
