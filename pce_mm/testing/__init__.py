"""Small datasets in the official formats, for tests and timing without the real data."""
from .official_formats import (CIFAR10_CLASSES, CIFAR10WithoutMD5, write_cifar10, write_mnist,
                               write_pcam, write_tiny_imagenet, write_voc_aug)

__all__ = ['CIFAR10WithoutMD5', 'write_cifar10', 'write_mnist', 'write_tiny_imagenet',
           'write_pcam', 'write_voc_aug', 'CIFAR10_CLASSES']
