# The digits (configs/_base_/digits.py) with mmpretrain's ResNet-18 (CIFAR stem) on one
# input channel. Twin: pce_digits.py.
_base_ = './_base_/digits.py'

model = dict(
    backbone=dict(
        _delete_=True, type='ResNet_CIFAR', depth=18, in_channels=1, out_indices=(3, )))
