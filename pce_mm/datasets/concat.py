"""Concatenation of datasets some of which may be absent (VOC 2012 with or without SBD)."""
import logging
import os.path as osp
from typing import Sequence

from mmengine.dataset import ConcatDataset
from mmengine.logging import print_log

from ..registry import DATASETS

__all__ = ['ConcatDatasetIfPresent']


@DATASETS.register_module()
class ConcatDatasetIfPresent(ConcatDataset):
    """mmengine's ``ConcatDataset`` that leaves out an *optional* member whose annotation
    file is missing, and says so in the log.

    mmseg's ``voc12aug`` trains on VOC 2012 ``train`` plus the SBD "aug" set; with this
    wrapper one config trains on both when SBD is installed and on ``train`` alone when not.

    Args:
        datasets: dataset configs (or datasets), as for ``ConcatDataset``.
        optional: indices of the members that may be absent.
    """

    def __init__(self, datasets: Sequence, optional: Sequence[int] = (), **kwargs):
        kept = []
        for i, dataset in enumerate(datasets):
            if i in optional and isinstance(dataset, dict):
                ann_file = osp.join(dataset.get('data_root', ''), dataset.get('ann_file', ''))
                if not osp.isfile(ann_file):
                    print_log(f'{ann_file} is missing: training without dataset {i} '
                              f'({dataset.get("type")})', logger='current', level=logging.WARNING)
                    continue
            kept.append(dataset)
        if not kept:
            raise FileNotFoundError('ConcatDatasetIfPresent: no dataset left to concatenate')
        super().__init__(kept, **kwargs)
