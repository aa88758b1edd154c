# MNIST with mmpretrain's ResNet-18 (CIFAR stem) on one input channel. Twin: pce_mnist.py.
_base_ = './_base_/mnist.py'

model = dict(
    backbone=dict(
        _delete_=True, type='ResNet_CIFAR', depth=18, in_channels=1, out_indices=(3, )))
