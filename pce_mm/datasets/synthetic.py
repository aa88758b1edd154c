"""Writers of small synthetic datasets in the exact file formats the real ones are
distributed in: for timing a config without its data (``tools/analysis/step_time.py``) and
for the tests.

Each returns what it wrote, so tests can compare what a dataset class reads with what is on
disk.
"""
import gzip
import os
import os.path as osp
import pickle
from typing import Dict, Tuple

import cv2
import numpy as np
from mmpretrain.datasets import CIFAR10

from ..registry import DATASETS
from .digits import write_idx

__all__ = ['SyntheticCIFAR10', 'write_cifar10', 'write_mnist', 'write_tiny_imagenet',
           'write_pcam', 'write_voc_aug', 'CIFAR10_CLASSES']

CIFAR10_CLASSES = ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse',
                   'ship', 'truck')


def write_cifar10(root: str, per_batch: int = 4, seed: int = 0) -> Dict[str, np.ndarray]:
    """``root/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}``: pickled dicts
    with ``data`` ``(N, 3072)`` uint8 (channel-major rows) and ``labels``."""
    rng = np.random.default_rng(seed)
    folder = osp.join(root, 'cifar-10-batches-py')
    os.makedirs(folder, exist_ok=True)
    written = {}
    for name in [f'data_batch_{i}' for i in range(1, 6)] + ['test_batch']:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, per_batch)]
        with open(osp.join(folder, name), 'wb') as f:
            pickle.dump({'batch_label': name, 'labels': labels, 'data': data,
                         'filenames': [f'{name}_{i}.png' for i in range(per_batch)]}, f)
        written[name] = (data, labels)
    with open(osp.join(folder, 'batches.meta'), 'wb') as f:
        pickle.dump({'num_cases_per_batch': per_batch, 'num_vis': 3072,
                     'label_names': list(CIFAR10_CLASSES)}, f)
    return written


def write_mnist(root: str, num_train: int = 8, num_test: int = 4,
                seed: int = 0) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """``root/{train,t10k}-{images-idx3,labels-idx1}-ubyte`` (the unzipped distribution)."""
    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    written = {}
    for prefix, n in (('train', num_train), ('t10k', num_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        write_idx(osp.join(root, f'{prefix}-images-idx3-ubyte'), images)
        write_idx(osp.join(root, f'{prefix}-labels-idx1-ubyte'), labels)
        written[prefix] = (images, labels)
    return written


def write_tiny_imagenet(root: str, wnids=('n01443537', 'n01629819', 'n01641577'),
                        per_class: int = 3, num_val: int = 4, seed: int = 0) -> dict:
    """``tiny-imagenet-200`` as distributed: ``wnids.txt``, ``words.txt`` (with more wnids
    than the classes, as the real one), ``train/<wnid>/images/*.JPEG`` with
    ``<wnid>_boxes.txt``, ``val/images`` + ``val_annotations.txt``, ``test/images``."""
    rng = np.random.default_rng(seed)
    names = {'n01443537': 'goldfish, Carassius auratus',
             'n01629819': 'European fire salamander, Salamandra salamandra',
             'n01641577': 'bullfrog, Rana catesbeiana', 'n09999999': 'not a class'}
    os.makedirs(root, exist_ok=True)
    with open(osp.join(root, 'wnids.txt'), 'w') as f:
        f.writelines(f'{w}\n' for w in wnids)
    with open(osp.join(root, 'words.txt'), 'w') as f:
        f.writelines(f'{w}\t{n}\n' for w, n in names.items())

    def image(path):
        cv2.imwrite(path, rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))

    for wnid in wnids:
        folder = osp.join(root, 'train', wnid, 'images')
        os.makedirs(folder, exist_ok=True)
        with open(osp.join(root, 'train', wnid, f'{wnid}_boxes.txt'), 'w') as boxes:
            for i in range(per_class):
                image(osp.join(folder, f'{wnid}_{i}.JPEG'))
                boxes.write(f'{wnid}_{i}.JPEG\t0\t0\t63\t63\n')
    os.makedirs(osp.join(root, 'val', 'images'), exist_ok=True)
    val_labels = []
    with open(osp.join(root, 'val', 'val_annotations.txt'), 'w') as f:
        for i in range(num_val):
            wnid = wnids[i % len(wnids)]
            image(osp.join(root, 'val', 'images', f'val_{i}.JPEG'))
            f.write(f'val_{i}.JPEG\t{wnid}\t1\t2\t60\t61\n')
            val_labels.append(wnids.index(wnid))
    os.makedirs(osp.join(root, 'test', 'images'), exist_ok=True)
    for i in range(2):
        image(osp.join(root, 'test', 'images', f'test_{i}.JPEG'))
    return dict(names=[names[w] for w in wnids], val_labels=val_labels)


def write_pcam(root: str, sizes=(('train', 8), ('valid', 4), ('test', 4)),
               gzipped: bool = False, seed: int = 0) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """``camelyonpatch_level_2_split_<split>_{x,y}.h5`` with datasets ``x`` (N, 96, 96, 3)
    and ``y`` (N, 1, 1, 1), uint8, as distributed (``.h5.gz`` when ``gzipped``)."""
    import h5py
    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    written = {}
    for split, n in sizes:
        x = rng.integers(0, 256, (n, 96, 96, 3), dtype=np.uint8)
        y = (np.arange(n) % 2).astype(np.uint8).reshape(n, 1, 1, 1)
        for part, key, value in (('x', 'x', x), ('y', 'y', y)):
            path = osp.join(root, f'camelyonpatch_level_2_split_{split}_{part}.h5')
            with h5py.File(path, 'w') as f:
                f.create_dataset(key, data=value, chunks=(1, ) + value.shape[1:])
            if gzipped:
                with open(path, 'rb') as src, gzip.open(path + '.gz', 'wb') as dst:
                    dst.write(src.read())
                os.remove(path)
        written[split] = (x, y.reshape(-1))
    return written


def write_voc_aug(voc2012: str) -> None:
    """SBD's "aug" set as mmseg's voc12aug expects it after its conversion script:
    ``SegmentationClassAug/*.png`` (plain label PNGs) and ``ImageSets/Segmentation/aug.txt``."""
    from PIL import Image
    ids = open(osp.join(voc2012, 'ImageSets/Segmentation/train.txt')).read().split()
    os.makedirs(osp.join(voc2012, 'SegmentationClassAug'), exist_ok=True)
    for i in ids:
        label = np.array(Image.open(osp.join(voc2012, 'SegmentationClass', f'{i}.png')))
        Image.fromarray(label).save(osp.join(voc2012, 'SegmentationClassAug', f'{i}.png'))
    with open(osp.join(voc2012, 'ImageSets/Segmentation/aug.txt'), 'w') as f:
        f.writelines(f'{i}\n' for i in ids)


@DATASETS.register_module()
class SyntheticCIFAR10(CIFAR10):
    """mmpretrain's ``CIFAR10`` without its md5 check of the official files (on a mismatch
    it tries to download them), for files written by :func:`write_cifar10`, which are in
    the official format but cannot have the official checksums."""
    train_list = [[name, None] for name, _ in CIFAR10.train_list]
    test_list = [[name, None] for name, _ in CIFAR10.test_list]
    meta = dict(CIFAR10.meta, md5=None)
