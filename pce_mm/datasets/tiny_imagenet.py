"""Tiny-ImageNet-200, read from the folder tree it is distributed as.

::

    tiny-imagenet-200/
      wnids.txt                      # the 200 WordNet ids, one per line (class order)
      words.txt                      # "<wnid>\\t<names>" for all of WordNet
      train/<wnid>/images/*.JPEG     # 500 images per class
      val/images/*.JPEG              # 10,000 images
      val/val_annotations.txt        # "<file>\\t<wnid>\\t<x0>\\t<y0>\\t<x1>\\t<y1>"
      test/images/*.JPEG             # no labels
"""
import os
import os.path as osp
from typing import Dict, List

from mmpretrain.datasets import BaseDataset

from ..registry import DATASETS

__all__ = ['TinyImageNet']


def _read_lines(path: str, what: str) -> List[str]:
    if not osp.isfile(path):
        raise FileNotFoundError(f'Tiny-ImageNet: {path} is missing; it should hold {what}')
    with open(path) as f:
        return [line.rstrip('\n') for line in f if line.strip()]


@DATASETS.register_module()
class TinyImageNet(BaseDataset):
    """Tiny-ImageNet-200 (64x64 images, 200 classes) for mmpretrain.

    Class order is that of ``wnids.txt``; class names come from ``words.txt``.

    Args:
        data_root: the ``tiny-imagenet-200`` folder.
        split: ``'train'``, ``'val'`` or ``'test'`` (unlabelled; ``gt_label`` is -1).
    """
    SPLITS = ('train', 'val', 'test')

    def __init__(self, data_root: str, split: str = 'train', **kwargs):
        if split not in self.SPLITS:
            raise ValueError(f'TinyImageNet split must be one of {self.SPLITS}, got {split!r}')
        self.split = split
        kwargs.setdefault('test_mode', split != 'train')
        super().__init__(ann_file='', data_root=data_root, data_prefix='', **kwargs)

    def _class_names(self, wnids: List[str]) -> Dict[str, str]:
        words = {}
        for line in _read_lines(osp.join(self.data_root, 'words.txt'),
                                '"<wnid>\\t<names>" lines'):
            wnid, _, names = line.partition('\t')
            words[wnid] = names
        missing = [w for w in wnids if w not in words]
        if missing:
            raise ValueError(f'Tiny-ImageNet: {osp.join(self.data_root, "words.txt")} has no '
                             f'names for {missing[:5]} (of wnids.txt)')
        return words

    def load_data_list(self) -> List[dict]:
        root = self.data_root
        wnids = _read_lines(osp.join(root, 'wnids.txt'), 'one WordNet id per line')
        words = self._class_names(wnids)
        self._metainfo.setdefault('classes', tuple(words[w] for w in wnids))
        label_of = {w: i for i, w in enumerate(wnids)}

        if self.split == 'train':
            data_list = []
            for wnid in wnids:
                folder = osp.join(root, 'train', wnid, 'images')
                if not osp.isdir(folder):
                    raise FileNotFoundError(f'Tiny-ImageNet: {folder} is missing; train/ should '
                                            f'hold one folder per wnid of wnids.txt')
                data_list += [dict(img_path=osp.join(folder, name), gt_label=label_of[wnid])
                              for name in sorted(os.listdir(folder))
                              if name.lower().endswith(('.jpeg', '.jpg', '.png'))]
            return data_list

        images = osp.join(root, self.split, 'images')
        if self.split == 'test':
            if not osp.isdir(images):
                raise FileNotFoundError(f'Tiny-ImageNet: {images} is missing')
            return [dict(img_path=osp.join(images, name), gt_label=-1)
                    for name in sorted(os.listdir(images))]

        ann_file = osp.join(root, 'val', 'val_annotations.txt')
        data_list = []
        for i, line in enumerate(_read_lines(ann_file, '"<file>\\t<wnid>\\t<box>" lines')):
            fields = line.split('\t')
            if len(fields) < 2 or fields[1] not in label_of:
                raise ValueError(f'Tiny-ImageNet: {ann_file} line {i + 1} should be '
                                 f'"<file>\\t<wnid of wnids.txt>\\t...", got {line!r}')
            data_list.append(dict(img_path=osp.join(images, fields[0]),
                                  gt_label=label_of[fields[1]]))
        return data_list
