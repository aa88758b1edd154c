"""scikit-learn's handwritten digits written as an MNIST dataset (idx files).

A small real classification set that ships inside an installed package: 1,797 8x8 digits
of 43 writers (UCI's optical digits), upsampled to MNIST's 28x28 and written in MNIST's
own files, so ``configs/*_mnist.py`` train and test on it unchanged (``data_root``).
"""
import os
import os.path as osp
import struct
from typing import Dict

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ['write_idx', 'make_digits_mnist']


def write_idx(path: str, array: np.ndarray) -> None:
    """IDX ("SN3") file: zero, zero, type 0x08 (ubyte), ndim, big-endian sizes, data."""
    with open(path, 'wb') as f:
        f.write(struct.pack('>BBBB', 0, 0, 0x08, array.ndim))
        f.write(struct.pack(f'>{array.ndim}I', *array.shape))
        f.write(array.astype(np.uint8).tobytes())


def make_digits_mnist(root: str, test_fraction: float = 0.25, size: int = 28,
                      seed: int = 0) -> Dict[str, int]:
    """Writes ``root/{train,t10k}-{images-idx3,labels-idx1}-ubyte``: the digits, bilinearly
    upsampled to ``size`` px (a 2-pixel black border, as MNIST's digits have), split at
    random with ``test_fraction`` held out. Returns the split sizes."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    images = torch.from_numpy(digits.images).float()[:, None] / 16.0   # (n, 1, 8, 8)
    inner = size - 4
    images = F.interpolate(images, size=(inner, inner), mode='bilinear', align_corners=False)
    images = F.pad(images, (2, 2, 2, 2))[:, 0]
    images = (images.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    order = np.random.default_rng(seed).permutation(len(images))
    num_test = int(round(len(images) * test_fraction))
    splits = dict(t10k=order[:num_test], train=order[num_test:])
    os.makedirs(root, exist_ok=True)
    for prefix, idx in splits.items():
        write_idx(osp.join(root, f'{prefix}-images-idx3-ubyte'), images[idx])
        write_idx(osp.join(root, f'{prefix}-labels-idx1-ubyte'), digits.target[idx])
    return {k: len(v) for k, v in splits.items()}
