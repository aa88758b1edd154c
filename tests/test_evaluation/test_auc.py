"""ROC AUC against values computed by hand."""
import math

import numpy as np
import pytest
import torch

from pce_mm.evaluation import AUC, roc_auc


def test_auc_counts_ordered_pairs_and_half_ties():
    # Positives score 0.9, 0.4, 0.4; negatives 0.4, 0.1. Pairs (pos > neg): 0.9 beats both
    # (2), each 0.4 ties the 0.4 (1/2) and beats 0.1 (1): 2 + 1.5 + 1.5 = 5 of 6.
    scores = np.array([0.9, 0.4, 0.4, 0.4, 0.1])
    labels = np.array([1, 1, 1, 0, 0])
    assert roc_auc(scores, labels) == pytest.approx(5 / 6)


def test_auc_is_one_when_ranking_is_perfect_and_nan_with_one_class():
    assert roc_auc(np.array([0.1, 0.2, 0.8]), np.array([0, 0, 1])) == 1.0
    assert roc_auc(np.array([0.8, 0.2, 0.1]), np.array([0, 0, 1])) == 0.0
    assert math.isnan(roc_auc(np.array([0.1, 0.2]), np.array([1, 1])))


def test_metric_reads_the_positive_class_score_of_mmpretrain_samples():
    metric = AUC(pos_label=1)
    samples = [dict(pred_score=torch.tensor([1 - s, s]), gt_label=torch.tensor([y]))
               for s, y in ((0.9, 1), (0.4, 1), (0.4, 1), (0.4, 0), (0.1, 0))]
    metric.process(None, samples)
    assert metric.evaluate(5)['auc/AUC'] == pytest.approx(500 / 6)
