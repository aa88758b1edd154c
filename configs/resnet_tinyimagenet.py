# Tiny-ImageNet-200 with mmpretrain's ResNet-18 (CIFAR stem). Twin: pce_tinyimagenet.py.
_base_ = './_base_/tinyimagenet.py'

model = dict(
    backbone=dict(
        _delete_=True, type='ResNet_CIFAR', depth=18, in_channels=3, out_indices=(3, )))
