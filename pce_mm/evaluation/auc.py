"""ROC AUC for binary classifiers (PatchCamelyon's second metric) as an mmengine metric;
mmpretrain has none. The area itself is scikit-learn's."""
import logging
from typing import List, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from sklearn.metrics import roc_auc_score

from ..registry import METRICS

__all__ = ['AUC', 'roc_auc']


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """scikit-learn's ``roc_auc_score``, but NaN (not an error) when ``labels`` holds only
    one class: an evaluation on a one-class subset still finishes."""
    labels = np.asarray(labels).astype(bool)
    if labels.all() or not labels.any():
        return float('nan')
    return float(roc_auc_score(labels, np.asarray(scores, np.float64)))


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
                      logger='current', level=logging.WARNING)
        return {'AUC': auc * 100}
