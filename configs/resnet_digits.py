# The digits (configs/_base_/digits.py) with mmpretrain's ResNet-18 (CIFAR stem) on one
# input channel. Twin: pce_digits.py.
_base_ = './_base_/digits.py'

model = dict(
    backbone=dict(
        _delete_=True, type='ResNet_CIFAR', depth=18, in_channels=1, out_indices=(3, )))
# Chosen on the validation digits from the twins' common grid (configs/studies/digits_lr.py).
optim_wrapper = dict(optimizer=dict(lr=0.2))
