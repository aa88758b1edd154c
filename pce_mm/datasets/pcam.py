"""PatchCamelyon (PCam): 96x96 H&E patches of Camelyon16 slides, label 1 = tumour tissue.

Read from the HDF5 files as distributed::

    camelyonpatch_level_2_split_{train,valid,test}_x.h5   # 'x': (N, 96, 96, 3) uint8
    camelyonpatch_level_2_split_{train,valid,test}_y.h5   # 'y': (N, 1, 1, 1) uint8

The files may still be gzipped (``.h5.gz``, as downloaded); HDF5 needs random access, so a
gzipped file is decompressed once beside it (or into ``extract_dir``). Images are read one
at a time from the open file (the train file is 6 GB: it is never loaded whole); labels are
read at start-up.
"""
import gzip
import os
import os.path as osp
import shutil
from typing import List, Optional

import mmengine.dist as dist
import numpy as np
from mmengine.logging import print_log
from mmpretrain.datasets import BaseDataset

from ..registry import DATASETS

__all__ = ['PCam']

FILE = 'camelyonpatch_level_2_split_{split}_{part}.h5'


def _open_h5(path: str):
    import h5py
    try:
        return h5py.File(path, 'r')
    except OSError as e:
        raise OSError(f'PCam: {path} is not a readable HDF5 file (truncated or corrupt '
                      f'download?): {e}') from e


def _dataset(h5file, key: str, path: str):
    if key not in h5file:
        raise KeyError(f'PCam: {path} has no dataset {key!r} (has {sorted(h5file)})')
    return h5file[key]


@DATASETS.register_module()
class PCam(BaseDataset):
    """PatchCamelyon for mmpretrain: binary classification of 96x96 RGB patches.

    Args:
        data_root: folder holding the ``camelyonpatch_level_2_split_*`` files.
        split: ``'train'``, ``'valid'`` or ``'test'``.
        extract_dir: where gzipped files are decompressed; defaults to ``data_root``.
    """
    METAINFO = {'classes': ('normal', 'tumor')}
    SPLITS = ('train', 'valid', 'test')

    def __init__(self, data_root: str, split: str = 'train',
                 extract_dir: Optional[str] = None, **kwargs):
        if split not in self.SPLITS:
            raise ValueError(f'PCam split must be one of {self.SPLITS}, got {split!r}')
        self.split = split
        self.extract_dir = extract_dir
        self._images = None        # the open 'x' dataset of this process
        self._images_pid = None
        kwargs.setdefault('test_mode', split != 'train')
        super().__init__(ann_file='', data_root=data_root, data_prefix='', **kwargs)

    def _file(self, part: str) -> str:
        """Path of the ``x`` or ``y`` file, decompressing a ``.h5.gz`` once if needed."""
        name = FILE.format(split=self.split, part=part)
        plain = osp.join(self.data_root, name)
        if osp.isfile(plain):
            return plain
        extracted = osp.join(self.extract_dir or self.data_root, name)
        gz = plain + '.gz'
        if not osp.isfile(extracted):
            if not osp.isfile(gz):
                raise FileNotFoundError(f'PCam: neither {plain} nor {gz} exists')
            if dist.is_main_process():
                print_log(f'PCam: decompressing {gz} to {extracted} (once)', logger='current')
                os.makedirs(osp.dirname(extracted), exist_ok=True)
                with gzip.open(gz, 'rb') as src, open(extracted + '.part', 'wb') as dst:
                    try:
                        shutil.copyfileobj(src, dst, length=1 << 24)
                    except (OSError, EOFError) as e:
                        raise OSError(f'PCam: {gz} is not a complete gzip file: {e}') from e
                os.replace(extracted + '.part', extracted)
            dist.barrier()
        return extracted

    def load_data_list(self) -> List[dict]:
        x_path, y_path = self._file('x'), self._file('y')
        with _open_h5(y_path) as f:
            labels = np.asarray(_dataset(f, 'y', y_path)).reshape(-1)
        with _open_h5(x_path) as f:
            images = _dataset(f, 'x', x_path)
            if images.ndim != 4 or images.shape[1:] != (96, 96, 3) or images.dtype != np.uint8:
                raise ValueError(f'PCam: {x_path} dataset "x" should be (N, 96, 96, 3) uint8, '
                                 f'got {images.shape} {images.dtype}')
            if len(images) != len(labels):
                raise ValueError(f'PCam: {x_path} holds {len(images)} images but {y_path} '
                                 f'{len(labels)} labels')
        if not np.isin(labels, (0, 1)).all():
            raise ValueError(f'PCam: {y_path} labels should be 0 or 1, got {np.unique(labels)}')
        self._x_path = x_path
        return [dict(h5_index=i, gt_label=int(y)) for i, y in enumerate(labels)]

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        # h5py handles do not survive fork: every dataloader worker opens its own.
        if self._images is None or self._images_pid != os.getpid():
            self._images = _dataset(_open_h5(self._x_path), 'x', self._x_path)
            self._images_pid = os.getpid()
        img = self._images[info['h5_index']]
        info.update(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2])
        return info

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state['_images'] = None
        return state
