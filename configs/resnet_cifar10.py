# CIFAR-10 with mmpretrain's ResNet-18 (CIFAR stem). Twin: pce_cifar10.py.
_base_ = './_base_/cifar10.py'

model = dict(
    backbone=dict(
        _delete_=True, type='ResNet_CIFAR', depth=18, in_channels=3, out_indices=(3, )))
